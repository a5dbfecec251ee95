"""File helpers shared by the dataset readers: label PNGs, split files, pairing images with masks."""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from mosic.data.frames import FRAME_SUFFIXES

logger = logging.getLogger(__name__)


def read_label_png(path: Path) -> np.ndarray:
    """Read a label map as stored: the palette index of a ``P`` PNG or the value of an ``L`` PNG.

    Returns:
        ``uint8 [H, W]``.

    Raises:
        FileNotFoundError: when the file does not exist.
        ValueError: when the image is not a palette or 8-bit grayscale image (an RGB rendering of a mask
            has lost its ids).
        OSError: when the file cannot be decoded.
    """
    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L"):
                raise ValueError(
                    f"{path}: label map has mode {im.mode}; expected a palette (P) or 8-bit grayscale (L) PNG of ids"
                )
            return np.array(im, dtype=np.uint8)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise OSError(f"cannot read label map {path}: {exc}") from exc


def check_root(root: str | Path, kind: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{kind} dataset root {root} is not a directory")
    return root


def files_by_stem(folder: Path, suffixes: Sequence[str], what: str) -> dict[str, Path]:
    """``{stem: path}`` of the (non-hidden) files in ``folder`` with one of ``suffixes`` (any case)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} folder {folder} does not exist")
    with os.scandir(folder) as it:
        names = [e.name for e in it if not e.name.startswith(".") and os.path.splitext(e.name)[1].lower() in suffixes]
    return {os.path.splitext(n)[0]: folder / n for n in sorted(names)}


def read_ids(path: Path) -> list[str]:
    """Image ids of a split file: one per line, blank lines and ``#`` comments skipped, a file suffix dropped."""
    ids = [line.strip() for line in path.read_text().splitlines()]
    ids = [os.path.splitext(i)[0] if i.lower().endswith((".jpg", ".png")) else i for i in ids]
    ids = [i for i in ids if i and not i.startswith("#")]
    dupes = [i for i, n in Counter(ids).items() if n > 1]
    if dupes:
        logger.warning("%s lists %d ids more than once (e.g. %s); each is used once", path, len(dupes), dupes[0])
    ids = list(dict.fromkeys(ids))
    if not ids:
        raise ValueError(f"split file {path} lists no images")
    return ids


def find_split_file(split: str, folders: Sequence[Path], kind: str) -> Path:
    """The id list of `split`: ``<folder>/<split>.txt`` for the first folder that has it, else a unique
    ``<split>.txt`` anywhere below the first folder (HB nests fraction files: ``1_div_128/trainaug_128_42.txt``)."""
    if not split:
        raise ValueError(f"{kind} needs a split name")
    name = split if split.endswith(".txt") else f"{split}.txt"
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    nested = sorted(folders[0].rglob(name)) if folders[0].is_dir() else []
    if len(nested) == 1:
        return nested[0]
    if len(nested) > 1:
        raise ValueError(f"{kind} split {split!r} is ambiguous: {', '.join(map(str, nested))}")
    known = sorted({p.stem for f in folders if f.is_dir() for p in f.rglob("*.txt")})
    tried = " or ".join(str(f / name) for f in folders)
    raise FileNotFoundError(f"{kind} split file {tried} does not exist (splits found: {known})")


def pair_files(
    ids: Sequence[str], folders: Sequence[tuple[Path, Path]], *, kind: str, source: str
) -> tuple[list[Path], list[Path]]:
    """The image and mask of every id: the first ``(image_dir, mask_dir)`` pair whose image folder holds
    ``<id>.jpg`` (any frame suffix), and ``<id>.png`` in its mask folder.

    Raises:
        FileNotFoundError: naming a folder that does not exist, or the first missing image / mask and the count.
    """
    listings = [
        (files_by_stem(img_dir, FRAME_SUFFIXES, f"{kind} image"), files_by_stem(mask_dir, (".png",), f"{kind} mask"))
        for img_dir, mask_dir in folders
    ]
    images: list[Path] = []
    masks: list[Path] = []
    no_image: list[Path] = []
    no_mask: list[Path] = []
    for i in ids:
        for (img_files, mask_files), (_, mask_dir) in zip(listings, folders, strict=True):
            if i in img_files:
                images.append(img_files[i])
                if i in mask_files:
                    masks.append(mask_files[i])
                else:
                    no_mask.append(mask_dir / f"{i}.png")
                break
        else:
            no_image.append(folders[0][0] / f"{i}.jpg")
    if no_image:
        raise FileNotFoundError(f"{len(no_image)} of {len(ids)} images of {source} are missing (first: {no_image[0]})")
    if no_mask:
        raise FileNotFoundError(f"{len(no_mask)} of {len(ids)} masks of {source} are missing (first: {no_mask[0]})")
    return images, masks
