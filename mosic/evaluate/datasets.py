"""Readers of the evaluation datasets in their on-disk layouts: image segmentation sets and annotated video sets.

Every reader implements a protocol of :mod:`mosic.evaluate.base`: images leave as RGB ``uint8 [H, W, 3]``
(:func:`mosic.data.frames.decode_image`, whatever the stored mode: grayscale and CMYK JPEGs occur in COCO),
masks as ``uint8 [H, W]`` read directly from the PNG (palette index for ``P``, value for ``L``;
``reference/eval_spec.md`` §2.2), then mapped to class ids where the dataset needs it. Readers list their
files once, when built, and fail there with the missing folder, split file or file named; pixels are read
only on request. Layouts (``reference/eval_spec.md`` §7):

- ``voc``: Pascal VOC 2012 + SBD. ``root`` is ``<VOC_ROOT>`` holding ``VOCSegmentation/`` (NeCo, MoSiC) or
  that folder itself (HB v2), or an official ``VOC2012`` folder. Images ``images/<id>.jpg`` (or
  ``JPEGImages/``); masks ``SegmentationClass/<id>.png`` (palette, 0-20 + 255 boundary) for ``val`` and
  ``SegmentationClassAug/<id>.png`` (SBD index masks) for every other split (``train``, ``trainaug`` and
  the fraction files, which are subsets of trainaug). Without ``SegmentationClassAug``, ``train`` (and any
  other split not named ``trainaug*``) falls back to ``SegmentationClass`` (the official VOC 2012 masks).
  Split ``<split>`` is the id list ``sets/<split>.txt`` or ``ImageSets/Segmentation/<split>.txt``; fraction
  files (``trainaug_128_42``) may also sit one or more folders down ``sets/``, as in HB's
  ``file_sets/voc/1_div_128/trainaug_128_42.txt``. 21 classes, ignore 255.
- ``synthetic``: the VOC-layout image set of :func:`mosic.data.synthetic.generate_synthetic` (``root`` is the
  generator's output folder or its ``voc/``): ``JPEGImages/``, ``SegmentationClass/``,
  ``ImageSets/Segmentation/{train,val}.txt`` and ``classes.json`` (class names, index = class id). Ignore 255.
- ``ade20k``: SceneParsing 2016. ``root`` is ``<ADE_ROOT>`` holding ``ADEChallengeData2016/`` or that folder
  itself; ``images/{training,validation}/*.jpg`` and ``annotations/{training,validation}/*.png`` (raw values
  0-150, kept as they are). Split ``training`` / ``validation`` (aliases ``train`` / ``val``) takes every
  image of the folder, sorted by name; any other split is an id list ``sets/<split>.txt`` (MoSiC's fraction
  files, e.g. ``training_128_42``; also found further down ``sets/``) whose ids are looked up in both
  folders. 151 classes (0 = "other"), ignore 0: class 0 never scores (the parity quirk of §2.3 lives in the
  metric, not here).
- ``coco_stuff`` / ``coco_things``: COCO 2017 as NeCo and HB read it. ``<root>/images/{train2017,val2017}/*.jpg``
  (split ``train2017`` / ``val2017``, aliases ``train`` / ``val``; every image, sorted by name) with masks
  named like the image:

  - stuff-15: ``annotations/stuff_annotations/stuff_{split}_pixelmaps/<id>.png`` (COCO-Stuff 2017 challenge
    pixel maps: 0 = things / unlabelled, 92-182 stuff, 183 "other"). Each stuff id becomes the index of its
    supercategory among the 15 sorted stuff supercategories (building ... window); 0 and 183 become 255. A
    value outside {0, 92..183} is an error (the file is not a pixel map: the 0-indexed ``stuffthingmaps``
    release looks similar).
  - things-12: ``annotations/{split}/<id>.png`` (semantic PNGs of panoptic category ids, 0 = unlabelled).
    Each thing id (1-90) becomes the index of its supercategory among the 12 sorted thing supercategories
    (accessory ... vehicle); everything else (0, stuff ids 92-200, unused ids) becomes 255, as in HB.

  The category -> supercategory tables are built in, equal to the ``categories`` of ``stuff_val2017.json``
  and ``panoptic_val2017.json`` that the reference code reads, so those (large) files are not needed.
- ``davis``: DAVIS-2017. ``<root>/JPEGImages/480p/<video>/%05d.jpg``, ``<root>/Annotations/480p/<video>/%05d.png``
  (palette instance ids, 0 = background, kept as they are: the protocol scores instances), split lists
  ``<root>/ImageSets/2017/<split>.txt`` (``val``: 30 videos); ``split = ""`` takes every video folder.
- ``ytvos``: YouTube-VOS 2019 train annotations, as :func:`mosic.data.layouts.discover` finds them: ``base`` =
  ``<root>/<split>`` for a subfolder split (Timetuning's ``val1/`` / ``train1/``), or ``<root>`` itself with
  ``split`` a list file ``<root>/<split>`` of video ids (``val1.txt``, the 695 ids of TimeT_clean val.txt),
  or ``split = ""`` for every video under ``<root>``. ``base`` holds ``JPEGImages/<video>/*.jpg``,
  ``Annotations/<video>/*.png`` (palette instance ids) and ``meta.json``. Instance ids become category ids
  through meta.json: category id = 1 + index of the category name among the sorted names of every object of
  meta.json (not only the split's videos, so ids agree between splits; 65 for YTVOS-2019 train), 0 =
  background, so two instances of one category get the same label.
- synthetic videos: the ``ytvos`` layout that :func:`mosic.data.synthetic.generate_synthetic` writes
  (``root`` is the output folder or its ``ytvos/``), labels mapped to categories like YouTube-VOS.

Video sets read only the annotated frames: the masks of ``Annotations/<video>`` paired by file name with the
frames of ``JPEGImages/<video>``; frame index ``i`` of :meth:`read` is the i-th annotated frame. (Masks are
read per request here rather than through :func:`mosic.data.layouts.read_annotations`, which decodes every
mask of a video at once.)
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from mosic.data.frames import FRAME_SUFFIXES, decode_image, list_frame_files
from mosic.data.layouts import ObjectMeta, discover, read_meta
from mosic.evaluate.base import SegmentationSet, VideoSegmentationSet

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_KINDS",
    "VIDEO_KINDS",
    "VOC_CLASSES",
    "ADE20K_CLASSES",
    "COCO_STUFF_CLASSES",
    "COCO_THINGS_CLASSES",
    "read_label_png",
    "VOCSegmentation",
    "SyntheticSegmentation",
    "ADE20KSegmentation",
    "COCOStuffSegmentation",
    "DAVISVideos",
    "YTVOSVideos",
    "image_dataset",
    "video_dataset",
]

IMAGE_KINDS = ("synthetic", "voc", "ade20k", "coco_stuff", "coco_things")
VIDEO_KINDS = ("synthetic", "davis", "ytvos")

VOC_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
]  # fmt: skip
"""Pascal VOC class names, index = class id."""

ADE20K_CLASSES = [
    "other", "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car",
    "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence",
    "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand",
    "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove",
    "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
    "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet",
    "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven",
    "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher",
    "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan",
    "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
]  # fmt: skip
"""ADE20K SceneParsing class names, index = mask value (0 = "other", the ignored label)."""

# COCO-Stuff 2017 stuff ids (92-182) by supercategory ("categories" of stuff_val2017.json; 183 is "other").
_STUFF_IDS = {
    "building": (95, 96, 128, 151, 158, 166),
    "ceiling": (102, 103),
    "floor": (101, 114, 115, 116, 117, 118),
    "food-stuff": (121, 122, 153, 170),
    "furniture-stuff": (98, 107, 108, 110, 112, 123, 130, 133, 156, 161, 165),
    "ground": (111, 125, 126, 136, 140, 144, 145, 147, 149, 154, 159),
    "plant": (94, 97, 119, 124, 129, 134, 142, 163, 169),
    "raw-material": (100, 132, 139, 143),
    "sky": (106, 157),
    "solid": (127, 135, 150, 160, 162, 182),
    "structural": (99, 113, 138, 146, 164),
    "textile": (92, 93, 104, 105, 109, 131, 137, 141, 152, 167, 168),
    "wall": (171, 172, 173, 174, 175, 176, 177),
    "water": (120, 148, 155, 178, 179),
    "window": (180, 181),
}
# COCO thing category ids (1-90, 80 used) by supercategory ("categories" with isthing = 1 of panoptic_val2017.json).
_THING_IDS = {
    "accessory": (27, 28, 31, 32, 33),
    "animal": tuple(range(16, 26)),
    "appliance": (78, 79, 80, 81, 82),
    "electronic": (72, 73, 74, 75, 76, 77),
    "food": tuple(range(52, 62)),
    "furniture": (62, 63, 64, 65, 67, 70),
    "indoor": (84, 85, 86, 87, 88, 89, 90),
    "kitchen": (44, 46, 47, 48, 49, 50, 51),
    "outdoor": (10, 11, 13, 14, 15),
    "person": (1,),
    "sports": tuple(range(34, 44)),
    "vehicle": tuple(range(2, 10)),
}
COCO_STUFF_CLASSES = sorted(_STUFF_IDS)
"""The 15 COCO-Stuff supercategories, index = class id."""
COCO_THINGS_CLASSES = sorted(_THING_IDS)
"""The 12 COCO thing supercategories, index = class id."""


def _lut(groups: dict[str, tuple[int, ...]]) -> np.ndarray:
    lut = np.full(256, 255, dtype=np.uint8)
    for index, name in enumerate(sorted(groups)):
        lut[list(groups[name])] = index
    return lut


_STUFF_LUT = _lut(_STUFF_IDS)
_STUFF_VALID = np.zeros(256, dtype=bool)
_STUFF_VALID[[0, *range(92, 184)]] = True
_THINGS_LUT = _lut(_THING_IDS)


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


def _check_root(root: str | Path, kind: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{kind} dataset root {root} is not a directory")
    return root


def _files_by_stem(folder: Path, suffixes: Sequence[str], what: str) -> dict[str, Path]:
    """``{stem: path}`` of the (non-hidden) files in ``folder`` with one of ``suffixes`` (any case)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} folder {folder} does not exist")
    with os.scandir(folder) as it:
        names = [e.name for e in it if not e.name.startswith(".") and os.path.splitext(e.name)[1].lower() in suffixes]
    return {os.path.splitext(n)[0]: folder / n for n in sorted(names)}


def _read_ids(path: Path) -> list[str]:
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


def _find_split_file(split: str, folders: Sequence[Path], kind: str) -> Path:
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


def _pair_files(
    ids: Sequence[str], folders: Sequence[tuple[Path, Path]], *, kind: str, source: str
) -> tuple[list[Path], list[Path]]:
    """The image and mask of every id: the first ``(image_dir, mask_dir)`` pair whose image folder holds
    ``<id>.jpg`` (any frame suffix), and ``<id>.png`` in its mask folder.

    Raises:
        FileNotFoundError: naming a folder that does not exist, or the first missing image / mask and the count.
    """
    listings = [
        (_files_by_stem(img_dir, FRAME_SUFFIXES, f"{kind} image"), _files_by_stem(mask_dir, (".png",), f"{kind} mask"))
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


class _ImageSegmentation:
    """Shared reading of an image segmentation split given its file lists (see :class:`SegmentationSet`).

    Attributes:
        name: ``<kind>/<split>``.
        num_classes: G.
        ignore_index: label of unlabelled pixels.
        class_names: G names, index = class id.
        ids: image ids (file stems), in split order.
        image_paths: image file of each id.
        mask_paths: mask file of each id.
    """

    def __init__(
        self,
        *,
        name: str,
        class_names: list[str],
        ignore_index: int | None,
        ids: list[str],
        image_paths: list[Path],
        mask_paths: list[Path],
    ) -> None:
        self.name = name
        self.class_names = list(class_names)
        self.num_classes = len(class_names)
        self.ignore_index = ignore_index
        self.ids = list(ids)
        self.image_paths = image_paths
        self.mask_paths = mask_paths
        logger.info("%s: %d images, %d classes", name, len(ids), self.num_classes)

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {len(self)} images)"

    def image(self, i: int) -> np.ndarray:
        """uint8 [H, W, 3] RGB of image `i`."""
        return decode_image(self.image_paths[i])

    def mask(self, i: int) -> np.ndarray:
        """uint8 [H, W] class ids of image `i` (``ignore_index`` where unlabelled)."""
        path = self.mask_paths[i]
        return self._to_classes(read_label_png(path), path)

    def _to_classes(self, raw: np.ndarray, path: Path) -> np.ndarray:
        return raw


def _voc_base(root: Path) -> Path:
    return root / "VOCSegmentation" if (root / "VOCSegmentation").is_dir() else root


def _first_dir(base: Path, names: Sequence[str], what: str) -> Path:
    for n in names:
        if (base / n).is_dir():
            return base / n
    raise FileNotFoundError(f"no {what} folder in {base} (looked for {', '.join(names)})")


class VOCSegmentation(_ImageSegmentation):
    """Pascal VOC 2012 (+ SBD trainaug) split: 21 classes, ignore 255 (layout in the module docstring).

    Args:
        root: ``<VOC_ROOT>`` (holding ``VOCSegmentation/``) or the VOC folder itself.
        split: ``val``, ``train``, ``trainaug`` or the name of a fraction file (``trainaug_128_42``).
        class_names: class names; default :data:`VOC_CLASSES`.
        kind: dataset name used in :attr:`name` and messages.

    Raises:
        FileNotFoundError: naming the missing root, folder, split file, image or mask.
        ValueError: for an empty split name or split file.
    """

    def __init__(self, root: str | Path, split: str, *, class_names: list[str] | None = None, kind: str = "voc"):
        base = _voc_base(_check_root(root, kind))
        image_dir = _first_dir(base, ("images", "JPEGImages"), f"{kind} image")
        split_file = _find_split_file(split, (base / "sets", base / "ImageSets" / "Segmentation"), kind)
        mask_dir = self._mask_dir(base, split, kind)
        ids = _read_ids(split_file)
        images, masks = _pair_files(ids, [(image_dir, mask_dir)], kind=kind, source=str(split_file))
        super().__init__(
            name=f"{kind}/{Path(split).stem}",
            class_names=VOC_CLASSES if class_names is None else class_names,
            ignore_index=255,
            ids=ids,
            image_paths=images,
            mask_paths=masks,
        )

    @staticmethod
    def _mask_dir(base: Path, split: str, kind: str) -> Path:
        plain, aug = base / "SegmentationClass", base / "SegmentationClassAug"
        if Path(split).stem.startswith("val"):
            return plain
        if aug.is_dir():
            return aug
        if Path(split).stem.startswith("trainaug"):
            raise FileNotFoundError(f"{kind} split {split!r} needs the SBD-augmented masks, but {aug} does not exist")
        return plain


class SyntheticSegmentation(VOCSegmentation):
    """The synthetic demo's VOC-layout image set: classes from ``classes.json``, ignore 255.

    Args:
        root: the output folder of :func:`mosic.data.synthetic.generate_synthetic`, or its ``voc/``.
        split: ``train`` or ``val``.

    Raises:
        FileNotFoundError: naming the missing root, ``classes.json``, folder, split file, image or mask.
    """

    def __init__(self, root: str | Path, split: str):
        root = _check_root(root, "synthetic")
        base = root / "voc" if (root / "voc").is_dir() else root
        classes = base / "classes.json"
        if not classes.is_file():
            raise FileNotFoundError(f"synthetic class list {classes} does not exist")
        super().__init__(base, split, class_names=[str(c) for c in json.loads(classes.read_text())], kind="synthetic")


class ADE20KSegmentation(_ImageSegmentation):
    """ADE20K SceneParsing split: 151 classes (0 = "other"), ignore 0, raw mask values.

    Args:
        root: ``<ADE_ROOT>`` (holding ``ADEChallengeData2016/``) or that folder.
        split: ``training`` / ``validation`` (or ``train`` / ``val``), or a list file name under ``sets/``.

    Raises:
        FileNotFoundError: naming the missing root, folder, split file, image or annotation.
    """

    _FOLDERS = {"training": "training", "validation": "validation", "train": "training", "val": "validation"}

    def __init__(self, root: str | Path, split: str):
        root = _check_root(root, "ade20k")
        base = root / "ADEChallengeData2016" if (root / "ADEChallengeData2016").is_dir() else root
        pairs = {f: (base / "images" / f, base / "annotations" / f) for f in ("training", "validation")}
        folder = self._FOLDERS.get(split)
        if folder is not None:
            ids = list(_files_by_stem(pairs[folder][0], FRAME_SUFFIXES, "ade20k image"))
            if not ids:
                raise FileNotFoundError(f"ade20k image folder {pairs[folder][0]} holds no images")
            folders, source, label = [pairs[folder]], str(pairs[folder][0]), folder
        else:
            split_file = _find_split_file(split, (base / "sets",), "ade20k")
            ids = _read_ids(split_file)
            folders = [p for p in pairs.values() if p[0].is_dir()] or [pairs["training"]]
            source, label = str(split_file), Path(split).stem
        images, masks = _pair_files(ids, folders, kind="ade20k", source=source)
        super().__init__(
            name=f"ade20k/{label}",
            class_names=ADE20K_CLASSES,
            ignore_index=0,
            ids=ids,
            image_paths=images,
            mask_paths=masks,
        )


class COCOStuffSegmentation(_ImageSegmentation):
    """COCO 2017 with the coarse labels of NeCo / Hummingbird: stuff-15 or things-12, ignore 255.

    Args:
        root: ``<COCO_ROOT>`` holding ``images/`` and ``annotations/``.
        split: ``train2017`` / ``val2017`` (or ``train`` / ``val``); every image of the folder.
        variant: ``stuff`` (15 stuff supercategories from the stuff pixel maps) or ``things`` (12 thing
            supercategories from the panoptic semantic PNGs).

    Raises:
        ValueError: for an unknown split or variant; from :meth:`mask`, for a stuff map holding values that
            are not pixel-map ids.
        FileNotFoundError: naming the missing root, folder or mask.
    """

    _FOLDERS = {"train2017": "train2017", "val2017": "val2017", "train": "train2017", "val": "val2017"}

    def __init__(self, root: str | Path, split: str, variant: Literal["stuff", "things"] = "stuff"):
        if variant not in ("stuff", "things"):
            raise ValueError(f"unknown COCO variant {variant!r}; accepted: 'stuff', 'things'")
        kind = f"coco_{variant}"
        root = _check_root(root, kind)
        folder = self._FOLDERS.get(split)
        if folder is None:
            raise ValueError(f"unknown {kind} split {split!r}; accepted: 'train2017', 'val2017' ('train', 'val')")
        if variant == "stuff":
            mask_dir = root / "annotations" / "stuff_annotations" / f"stuff_{folder}_pixelmaps"
        else:
            mask_dir = root / "annotations" / folder
        image_dir = root / "images" / folder
        ids = list(_files_by_stem(image_dir, FRAME_SUFFIXES, f"{kind} image"))
        if not ids:
            raise FileNotFoundError(f"{kind} image folder {image_dir} holds no images")
        images, masks = _pair_files(ids, [(image_dir, mask_dir)], kind=kind, source=str(image_dir))
        self.variant = variant
        super().__init__(
            name=f"{kind}/{folder}",
            class_names=COCO_STUFF_CLASSES if variant == "stuff" else COCO_THINGS_CLASSES,
            ignore_index=255,
            ids=ids,
            image_paths=images,
            mask_paths=masks,
        )

    def _to_classes(self, raw: np.ndarray, path: Path) -> np.ndarray:
        if self.variant == "things":
            return _THINGS_LUT[raw]
        bad = ~_STUFF_VALID[raw]
        if bad.any():
            values = np.unique(raw[bad])[:8].tolist()
            raise ValueError(
                f"{path}: values {values} are not COCO-Stuff 2017 pixel-map ids (0, 92-183); is this a "
                "stuff_*2017_pixelmaps file?"
            )
        return _STUFF_LUT[raw]


def _split_label(split: str) -> str:
    return Path(split).stem if split else "all"


class _AnnotatedVideos:
    """Shared reading of annotated videos (see :class:`VideoSegmentationSet`).

    Attributes:
        name: ``<kind>/<split>`` (``all`` when no split is given).
        video_ids: the videos, sorted.
    """

    def __init__(self, *, name: str, dirs: dict[str, tuple[Path, Path]]) -> None:
        missing = [(v, d) for v, pair in dirs.items() for d in pair if not d.is_dir()]
        if missing:
            raise FileNotFoundError(
                f"{name}: {len({v for v, _ in missing})} of {len(dirs)} videos lack a frame or annotation folder "
                f"(first: {missing[0][1]})"
            )
        if not dirs:
            raise ValueError(f"{name}: no videos")
        self.name = name
        self.video_ids = sorted(dirs)
        self._dirs = dirs  # video id -> (frame folder, annotation folder)
        self._frames: dict[str, list[tuple[Path, Path]]] = {}
        logger.info("%s: %d videos", name, len(dirs))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {len(self.video_ids)} videos)"

    def _annotated(self, video_id: str) -> list[tuple[Path, Path]]:
        """``(frame, mask)`` files of the annotated frames, in frame order (listed once per video)."""
        if video_id not in self._frames:
            if video_id not in self._dirs:
                raise KeyError(f"{self.name} has no video {video_id!r}")
            frame_dir, ann_dir = self._dirs[video_id]
            frames = {p.stem: p for p in list_frame_files(frame_dir)}
            pairs = []
            for mask in list_frame_files(ann_dir):
                if mask.suffix.lower() != ".png":
                    continue
                if mask.stem not in frames:
                    raise FileNotFoundError(f"{mask} has no frame {mask.stem} in {frame_dir}")
                pairs.append((frames[mask.stem], mask))
            if not pairs:
                raise FileNotFoundError(f"no .png masks in {ann_dir}")
            self._frames[video_id] = pairs
        return self._frames[video_id]

    def num_frames(self, video_id: str) -> int:
        """Annotated frames of the video."""
        return len(self._annotated(video_id))

    def read(self, video_id: str, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Frames and labels of annotated frames `indices` of a video.

        Returns:
            Frames ``uint8 [T, H, W, 3]`` RGB and labels ``uint8 [T, H, W]`` (0 = background).

        Raises:
            KeyError: for an unknown video.
            IndexError: for an index outside ``[0, num_frames)``.
            ValueError: when `indices` is empty, frames of the video differ in size, or a mask's size differs
                from its frame's.
        """
        pairs = self._annotated(video_id)
        if len(indices) == 0:
            raise ValueError(f"{self.name}/{video_id}: no frame indices given")
        frames, labels = [], []
        for i in indices:
            if not 0 <= i < len(pairs):
                raise IndexError(f"{self.name}/{video_id}: frame {i} out of range ({len(pairs)} annotated frames)")
            frame_path, mask_path = pairs[i]
            frame = decode_image(frame_path)
            mask = read_label_png(mask_path)
            if mask.shape != frame.shape[:2]:
                raise ValueError(f"{mask_path}: mask is {mask.shape}, its frame {frame_path} is {frame.shape[:2]}")
            if frames and frame.shape != frames[0].shape:
                raise ValueError(f"{frame_path}: frame is {frame.shape[:2]}, earlier frames are {frames[0].shape[:2]}")
            frames.append(frame)
            labels.append(self._to_labels(video_id, mask, mask_path))
        return np.stack(frames), np.stack(labels)  # [T, H, W, 3], [T, H, W]

    def _to_labels(self, video_id: str, raw: np.ndarray, path: Path) -> np.ndarray:
        return raw


class DAVISVideos(_AnnotatedVideos):
    """DAVIS-2017 videos with their instance ids (0 = background) as labels.

    Args:
        root: the DAVIS folder (holding ``JPEGImages/480p``, ``Annotations/480p``, ``ImageSets/2017``).
        split: ``val`` / ``train`` (``ImageSets/2017/<split>.txt``), or '' for every video.

    Raises:
        FileNotFoundError: naming the missing root, folder or split file, or a listed video's missing folder.
    """

    def __init__(self, root: str | Path, split: str = ""):
        root = _check_root(root, "davis")
        videos = discover(root, "davis", split)
        dirs = {v: (path, root / "Annotations" / "480p" / v) for v, path, _ in videos}
        super().__init__(name=f"davis/{_split_label(split)}", dirs=dirs)


class YTVOSVideos(_AnnotatedVideos):
    """YouTube-VOS videos with category labels: instance ids mapped through ``meta.json`` (0 = background).

    Args:
        root: the dataset root (layout in the module docstring).
        split: a subfolder (``val1``), a list file relative to `root` (``val1.txt``), or '' for every video.
        kind: dataset name used in :attr:`name` and messages.

    Attributes:
        category_names: category names; category id = index + 1.

    Raises:
        FileNotFoundError: naming the missing root, folder, list file or meta.json, or a listed video's
            missing folder.
        ValueError: when meta.json has no entry for a video, or more than 255 categories; from :meth:`read`,
            for a mask holding an instance id that meta.json does not list.
    """

    def __init__(self, root: str | Path, split: str = "", *, kind: str = "ytvos"):
        root = _check_root(root, kind)
        videos = discover(root, "ytvos", split)
        base = root / split if split and not split.endswith(".txt") else root  # as mosic.data.layouts
        dirs = {v: (path, base / "Annotations" / v) for v, path, _ in videos}
        super().__init__(name=f"{kind}/{_split_label(split)}", dirs=dirs)
        meta = read_meta(root, split)
        self.category_names = sorted({o.category for objs in meta.values() for o in objs.values() if o.category})
        if len(self.category_names) > 255:
            raise ValueError(f"{base / 'meta.json'} has {len(self.category_names)} categories; at most 255 fit uint8")
        no_meta = [v for v, _, _ in videos if v not in meta]
        if no_meta:
            raise ValueError(
                f"{base / 'meta.json'} has no entry for {len(no_meta)} of {len(videos)} videos (first: {no_meta[0]})"
            )
        self._luts = {v: self._lut(meta[v]) for v in dirs}

    def _lut(self, objects: dict[int, ObjectMeta]) -> tuple[np.ndarray, np.ndarray]:
        """Instance id -> category id table, and which instance ids are known (0 always is)."""
        ids = {c: i + 1 for i, c in enumerate(self.category_names)}
        lut = np.zeros(256, dtype=np.uint8)
        known = np.zeros(256, dtype=bool)
        known[0] = True
        for instance, obj in objects.items():
            if 0 < instance < 256 and obj.category:
                lut[instance] = ids[obj.category]
                known[instance] = True
        return lut, known

    def _to_labels(self, video_id: str, raw: np.ndarray, path: Path) -> np.ndarray:
        lut, known = self._luts[video_id]
        bad = ~known[raw]
        if bad.any():
            raise ValueError(
                f"{path}: instance ids {np.unique(raw[bad])[:8].tolist()} have no category in meta.json "
                f"(video {video_id})"
            )
        return lut[raw]


def image_dataset(kind: str, root: str | Path, split: str) -> SegmentationSet:
    """Open an image segmentation split.

    Args:
        kind: ``synthetic``, ``voc``, ``ade20k``, ``coco_stuff`` or ``coco_things`` (layouts in the module docstring).
        root: dataset root.
        split: split name (``val``, ``trainaug``, a fraction file, ``validation``, ``val2017`` ...).

    Returns:
        The split's reader.

    Raises:
        ValueError: for an unknown kind or split.
        FileNotFoundError: naming the missing root, folder, split file, image or mask.
    """
    if kind == "synthetic":
        return SyntheticSegmentation(root, split)
    if kind == "voc":
        return VOCSegmentation(root, split)
    if kind == "ade20k":
        return ADE20KSegmentation(root, split)
    if kind in ("coco_stuff", "coco_things"):
        return COCOStuffSegmentation(root, split, variant="stuff" if kind == "coco_stuff" else "things")
    raise ValueError(f"unknown image dataset kind {kind!r}; accepted: {', '.join(map(repr, IMAGE_KINDS))}")


def video_dataset(kind: str, root: str | Path, split: str = "") -> VideoSegmentationSet:
    """Open an annotated video set.

    Args:
        kind: ``synthetic`` (the demo videos, categories), ``davis`` (instance ids) or ``ytvos`` (categories).
        root: dataset root (for ``synthetic``, the generator's output folder or its ``ytvos/``).
        split: davis: ``val``; ytvos: a subfolder or a list file (``val1.txt``); '' = every video.

    Returns:
        The set's reader.

    Raises:
        ValueError: for an unknown kind, or a YouTube-VOS meta.json that does not cover the videos.
        FileNotFoundError: naming the missing root, folder, split file or meta.json.
    """
    if kind == "synthetic":
        root = _check_root(root, "synthetic")
        return YTVOSVideos(root / "ytvos" if (root / "ytvos").is_dir() else root, split, kind="synthetic")
    if kind == "davis":
        return DAVISVideos(root, split)
    if kind == "ytvos":
        return YTVOSVideos(root, split)
    raise ValueError(f"unknown video dataset kind {kind!r}; accepted: {', '.join(map(repr, VIDEO_KINDS))}")
