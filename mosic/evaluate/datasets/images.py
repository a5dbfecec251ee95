"""Image segmentation sets (VOC, the synthetic VOC layout, ADE20K, COCO-Stuff / COCO-Things) and their factory."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from mosic.data.frames import FRAME_SUFFIXES, decode_image
from mosic.evaluate.base import SegmentationSet
from mosic.evaluate.datasets.classes import (
    ADE20K_CLASSES,
    COCO_STUFF_CLASSES,
    COCO_THINGS_CLASSES,
    STUFF_LUT,
    STUFF_VALID,
    THINGS_LUT,
    VOC_CLASSES,
)
from mosic.evaluate.datasets.files import (
    check_root,
    files_by_stem,
    find_split_file,
    pair_files,
    read_ids,
    read_label_png,
)

logger = logging.getLogger(__name__)

IMAGE_KINDS = ("synthetic", "voc", "ade20k", "coco_stuff", "coco_things")


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
        base = _voc_base(check_root(root, kind))
        image_dir = _first_dir(base, ("images", "JPEGImages"), f"{kind} image")
        split_file = find_split_file(split, (base / "sets", base / "ImageSets" / "Segmentation"), kind)
        mask_dir = self._mask_dir(base, split, kind)
        ids = read_ids(split_file)
        images, masks = pair_files(ids, [(image_dir, mask_dir)], kind=kind, source=str(split_file))
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
        root = check_root(root, "synthetic")
        base = root / "voc" if (root / "voc").is_dir() else root
        classes = base / "classes.json"
        if not classes.is_file():
            raise FileNotFoundError(f"synthetic class list {classes} does not exist")
        super().__init__(base, split, class_names=[str(c) for c in json.loads(classes.read_text())], kind="synthetic")


def synthetic_faces(root: str | Path) -> int:
    """Faces per class F of the synthetic image set: ``faces`` of its ``objects.json`` (1 when absent).

    With F > 1 the set also has the splits ``train_face<f>`` and ``val_face<f>`` (f < F): the scenes of
    ``train`` / ``val`` with every object showing face f, masks unchanged.
    """
    root = check_root(root, "synthetic")
    base = root / "voc" if (root / "voc").is_dir() else root
    objects = base / "objects.json"
    return int(json.loads(objects.read_text())["faces"]) if objects.is_file() else 1


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
        root = check_root(root, "ade20k")
        base = root / "ADEChallengeData2016" if (root / "ADEChallengeData2016").is_dir() else root
        pairs = {f: (base / "images" / f, base / "annotations" / f) for f in ("training", "validation")}
        folder = self._FOLDERS.get(split)
        if folder is not None:
            ids = list(files_by_stem(pairs[folder][0], FRAME_SUFFIXES, "ade20k image"))
            if not ids:
                raise FileNotFoundError(f"ade20k image folder {pairs[folder][0]} holds no images")
            folders, source, label = [pairs[folder]], str(pairs[folder][0]), folder
        else:
            split_file = find_split_file(split, (base / "sets",), "ade20k")
            ids = read_ids(split_file)
            folders = [p for p in pairs.values() if p[0].is_dir()] or [pairs["training"]]
            source, label = str(split_file), Path(split).stem
        images, masks = pair_files(ids, folders, kind="ade20k", source=source)
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
        root = check_root(root, kind)
        folder = self._FOLDERS.get(split)
        if folder is None:
            raise ValueError(f"unknown {kind} split {split!r}; accepted: 'train2017', 'val2017' ('train', 'val')")
        if variant == "stuff":
            mask_dir = root / "annotations" / "stuff_annotations" / f"stuff_{folder}_pixelmaps"
        else:
            mask_dir = root / "annotations" / folder
        image_dir = root / "images" / folder
        ids = list(files_by_stem(image_dir, FRAME_SUFFIXES, f"{kind} image"))
        if not ids:
            raise FileNotFoundError(f"{kind} image folder {image_dir} holds no images")
        images, masks = pair_files(ids, [(image_dir, mask_dir)], kind=kind, source=str(image_dir))
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
            return THINGS_LUT[raw]
        bad = ~STUFF_VALID[raw]
        if bad.any():
            values = np.unique(raw[bad])[:8].tolist()
            raise ValueError(
                f"{path}: values {values} are not COCO-Stuff 2017 pixel-map ids (0, 92-183); is this a "
                "stuff_*2017_pixelmaps file?"
            )
        return STUFF_LUT[raw]


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
