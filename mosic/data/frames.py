"""Decoding single frame images (JPEG, PNG) to RGB uint8 arrays, fast, whatever their pixel mode.

Every frame leaves this module as ``uint8 [H, W, 3]`` RGB:

- ``RGB`` as stored; ``L`` (grayscale), ``1`` (bilevel: 0 / 255), ``P`` (palette), ``CMYK`` (PIL's naive
  CMYK -> RGB, no colour profile) and ``YCbCr`` through PIL's ``convert("RGB")``.
- 16-bit grayscale PNG (``I;16``, or ``I`` holding 0-65535) is scaled to 8 bits: ``round(v * 255 / 65535)``.
- Anything with alpha (``RGBA``, ``LA``, ``PA``, a palette or grayscale PNG with a ``tRNS`` chunk) is
  composited on black: ``rgb * alpha / 255``. Transparent pixels carry no defined colour (encoders leave
  anything there), so black is the only value that is the same for every encoder; opaque frames, the
  only kind video extraction produces, are unchanged.
- EXIF orientation (tag 274, codes 1-8) is honoured when asked (``orient=True``, as frame-folder readers do):
  the frame comes out as an image viewer shows it, rotated and / or mirrored with numpy. Video files carry
  the same information as a display matrix (:func:`orientation_from_display_matrix`), so both sources share
  the EXIF codes and :func:`apply_orientation`. Masks (PNG, no EXIF) are read as stored, so evaluation reads
  frames with ``orient=False`` to keep them aligned with their masks.

Speed: when a target size is given and it is at most half the stored size, JPEGs are decoded at 1/2,
1/4 or 1/8 scale in the DCT domain (PIL ``draft``), which skips most of the inverse DCT and colour
conversion (about 2x faster at 1280x720 -> 224x224, see `benchmarks/decode.py`); the rest of the way is
``cv2.resize`` with ``INTER_AREA`` (``INTER_LINEAR`` when enlarging).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = [
    "FRAME_SUFFIXES",
    "FrameHeader",
    "decode_image",
    "to_rgb",
    "resize_rgb",
    "list_frame_files",
    "duplicate_stems",
    "check_frame",
    "read_exif_orientation",
    "orientation_from_display_matrix",
    "orientation_rotation",
    "apply_orientation",
]

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
"""File suffixes (compared lower-case) that count as frames in a frame folder."""

_JPEG_EOI = b"\xff\xd9"
_PNG_IEND = b"IEND\xaeB`\x82"
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_EXIF_ORIENTATION = 0x0112
# EXIF orientation code -> (degrees clockwise, mirrored): the viewer mirrors left-right first, then rotates.
_ORIENTATIONS = {1: (0, False), 2: (0, True), 3: (180, False), 4: (180, True),
                 5: (270, True), 6: (90, False), 7: (90, True), 8: (270, False)}  # fmt: skip


def _natural_key(name: str) -> list[int | str]:
    # Zero-padded names (YTVOS 00000.jpg) sort the same either way; unpadded ones (1.jpg, 10.jpg, 2.jpg)
    # only sort in frame order when digit runs compare as numbers.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_frame_files(folder: Path) -> list[Path]:
    """The frame files of a frame folder, in frame order.

    Frames are the entries whose suffix is one of :data:`FRAME_SUFFIXES` (any case), sorted by name with
    digit runs compared as numbers. Hidden files are ignored: macOS archives add ``._00000.jpg``
    resource forks next to every frame, and those are not images. Entries that are not directories are
    kept even when they cannot be stat'ed (a dangling symlink), so probing reports them instead of
    silently shortening the video.

    Raises:
        OSError: when the folder cannot be listed.
    """
    with os.scandir(folder) as it:
        names = [
            e.name
            for e in it
            if not e.name.startswith(".")
            and os.path.splitext(e.name)[1].lower() in FRAME_SUFFIXES
            and not e.is_dir(follow_symlinks=True)
        ]
    return [folder / n for n in sorted(names, key=_natural_key)]


def duplicate_stems(files: list[Path]) -> dict[str, list[str]]:
    """Frames stored twice: file stems that occur with more than one suffix (``00000.jpg`` and ``00000.png``).

    Returns:
        ``{stem: [file names]}`` for every such stem, in frame order; empty when every stem is unique.
    """
    by_stem: dict[str, list[str]] = {}
    for f in files:
        by_stem.setdefault(f.stem, []).append(f.name)
    return {stem: names for stem, names in by_stem.items() if len(names) > 1}


# --- orientation (EXIF codes, shared with the display matrix of video files) ---------------------------------
def read_exif_orientation(im: Image.Image) -> int:
    """The EXIF orientation code (1-8) of an opened image; 1 (as stored) when absent or unreadable.

    Reads the EXIF block PIL found while opening the file (JPEG APP1, PNG eXIf before the image data), so
    a PNG is not decoded to find it.
    """
    raw = im.info.get("exif")
    if not raw:
        return 1
    try:
        exif = Image.Exif()
        exif.load(raw)
        code = int(exif.get(_EXIF_ORIENTATION, 1))
    except Exception:  # a damaged EXIF block says nothing reliable about orientation
        return 1
    return code if code in _ORIENTATIONS else 1


def orientation_from_display_matrix(matrix: np.ndarray | list[int]) -> int:
    """The EXIF orientation code of a video display matrix (``AV_PKT_DATA_DISPLAYMATRIX``, 9 int32).

    FFmpeg's matrix maps a stored pixel ``(p, q)`` (column, row; rows go down) to the displayed
    ``p' = a p + c q + x``, ``q' = b p + d q + y`` with ``a, b, c, d = m[0], m[1], m[3], m[4]`` (16.16 fixed
    point). Only multiples of 90 degrees, with or without a mirror, are recognised; anything else (a
    matrix that is not one of the eight axis-aligned transforms, or all zero) counts as 1, as stored.
    """
    m = np.asarray(matrix, dtype=np.int64).reshape(-1)
    if m.size < 5:
        return 1
    a, b, c, d = (int(np.sign(v)) if abs(v) >= 1 << 15 else 0 for v in (m[0], m[1], m[3], m[4]))
    table = {  # (a, b, c, d) -> code
        (1, 0, 0, 1): 1, (-1, 0, 0, 1): 2, (-1, 0, 0, -1): 3, (1, 0, 0, -1): 4,
        (0, 1, 1, 0): 5, (0, 1, -1, 0): 6, (0, -1, -1, 0): 7, (0, -1, 1, 0): 8,
    }  # fmt: skip
    return table.get((a, b, c, d), 1)


def orientation_rotation(code: int) -> tuple[int, bool]:
    """``(degrees clockwise, mirrored)`` that EXIF orientation `code` applies (mirror left-right first)."""
    return _ORIENTATIONS.get(code, (0, False))


def apply_orientation(rgb: np.ndarray, code: int) -> np.ndarray:
    """Turn a stored ``[H, W, C]`` frame into the one a viewer shows for EXIF orientation `code`.

    Codes 5-8 swap height and width. Returns a view when `code` is 1, a contiguous copy otherwise.
    """
    degrees, mirrored = orientation_rotation(code)
    if degrees == 0 and not mirrored:
        return rgb
    out = rgb[:, ::-1] if mirrored else rgb
    return np.ascontiguousarray(np.rot90(out, k=-degrees // 90))  # np.rot90 turns counter-clockwise


class FrameHeader(NamedTuple):
    """What :func:`check_frame` learns from a frame file: its displayed size and EXIF orientation."""

    height: int  # as displayed (after the orientation)
    width: int
    orientation: int  # EXIF code, 1 = as stored


def check_frame(path: Path) -> FrameHeader:
    """Check that a frame file is a complete, decodable image without decoding it in the common case.

    Reads the header (PIL's lazy open) and the last bytes of the file: a JPEG must end with its EOI
    marker and a PNG with its IEND chunk. Only a file that does not (a truncated file, or an encoder that
    pads after the end marker) is decoded in full to decide. Costs about 0.1 ms per frame.

    Returns:
        ``(height, width, orientation)``: the size as displayed (EXIF orientations 5-8 swap the stored
        height and width) and the EXIF orientation code.

    Raises:
        OSError: with a short description of the problem (zero-byte file, not an image, truncated, or
            the operating system's error when the file cannot be opened).
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise OSError("zero-byte file")
        try:
            im = Image.open(f)
        except UnidentifiedImageError as exc:
            raise OSError("not an image file (no known image format)") from exc
        except Exception as exc:  # PIL raises OSError, SyntaxError or struct errors on a damaged header
            raise OSError(f"corrupt image header ({exc})") from exc
        width, height = im.size
        orientation = read_exif_orientation(im)
        end = {"JPEG": _JPEG_EOI, "PNG": _PNG_IEND}.get(im.format or "")
        if end is not None:
            f.seek(max(0, size - len(end)))
            if f.read() != end:
                f.seek(0)
                try:
                    Image.open(f).load()
                except Exception as exc:
                    raise OSError(f"corrupt {im.format} ({exc})") from exc
    if orientation >= 5:
        height, width = width, height
    return FrameHeader(height, width, orientation)


def to_rgb(im: Image.Image) -> np.ndarray:
    """Convert an opened PIL image of any mode to ``uint8 [H, W, 3]`` RGB (rules in the module docstring)."""
    mode = im.mode
    if mode in _SIXTEEN_BIT:
        a = np.asarray(im).astype(np.int64)
        a = ((np.clip(a, 0, 65535) * 255 + 32767) // 65535).astype(np.uint8)
        return np.repeat(a[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or im.has_transparency_data:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.uint16)
        # (x * a + 127) // 255 is x * a / 255 rounded to nearest, exact on the 0-255 grid.
        return ((rgba[:, :, :3] * rgba[:, :, 3:4] + 127) // 255).astype(np.uint8)
    if mode != "RGB":
        im = im.convert("RGB")
    return np.array(im)  # a writable copy: callers hand frames to torch, which warns on read-only arrays


def resize_rgb(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``[H, W, 3]`` to ``size = (height, width)``: area averaging to shrink, bilinear to enlarge."""
    h, w = size
    if rgb.shape[0] == h and rgb.shape[1] == w:
        return rgb
    shrink = h <= rgb.shape[0] and w <= rgb.shape[1]
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def decode_image(path: Path, size: tuple[int, int] | None = None, *, orient: bool = False) -> np.ndarray:
    """Decode one frame file to RGB, optionally turned as its EXIF orientation says and resized.

    Args:
        path: a JPEG or PNG file (any format PIL reads works).
        size: ``(height, width)`` of the output (as displayed when `orient`); None keeps the frame's size.
        orient: apply the EXIF orientation (:func:`apply_orientation`); False reads the pixels as stored.

    Returns:
        ``uint8 [H, W, 3]`` RGB.

    Raises:
        OSError: when the file cannot be opened or decoded (PIL's other exceptions are converted).
    """
    try:
        with Image.open(path) as im:
            code = read_exif_orientation(im) if orient else 1
            if size is not None and im.format == "JPEG":
                # draft picks the largest DCT scale (1/2, 1/4, 1/8) that keeps both sides >= the request,
                # given in stored orientation (codes 5-8 swap the sides).
                im.draft(None, (size[0], size[1]) if code >= 5 else (size[1], size[0]))
            rgb = apply_orientation(to_rgb(im), code)
    except OSError:
        raise
    except Exception as exc:  # PIL raises SyntaxError, ValueError, DecompressionBombError on some bad files
        raise OSError(f"cannot decode {path}: {type(exc).__name__}: {exc}") from exc
    return rgb if size is None else resize_rgb(rgb, size)
