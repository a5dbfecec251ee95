"""Evaluation dataset readers on tiny trees in the real on-disk layouts (VOC, ADE20K, COCO, DAVIS, YTVOS, synthetic)."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mosic.config import SyntheticConfig
from mosic.data.synthetic import generate_synthetic, voc_palette
from mosic.evaluate.base import SegmentationSet, VideoSegmentationSet
from mosic.evaluate.datasets import (
    ADE20K_CLASSES,
    COCO_STUFF_CLASSES,
    COCO_THINGS_CLASSES,
    VOC_CLASSES,
    COCOStuffSegmentation,
    DAVISVideos,
    VOCSegmentation,
    YTVOSVideos,
    image_dataset,
    read_label_png,
    video_dataset,
)

H, W = 6, 8


def _labels(*values: int) -> np.ndarray:
    """A [H, W] label map holding `values` in vertical bands (every value present)."""
    out = np.zeros((H, W), np.uint8)
    for k, v in enumerate(values):
        out[:, k * W // len(values) :] = v
    return out


def _palette_png(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(labels)
    im.putpalette(voc_palette())
    im.save(path)
    assert Image.open(path).mode == "P"


def _gray_png(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(labels, mode="L").save(path)


def _jpeg(path: Path, color: tuple[int, int, int] = (200, 40, 90), mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new("RGB", (W, H), color)
    (im.convert(mode) if mode != "RGB" else im).save(path, quality=100)


def _lines(path: Path, ids: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{i}\n" for i in ids))


# --------------------------------------------------------------------------------------------- Pascal VOC


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    """<VOC_ROOT>/VOCSegmentation/{images, SegmentationClass, SegmentationClassAug, sets} (NeCo / MoSiC)."""
    base = tmp_path / "VOCSegmentation"
    ids = ["2007_000032", "2008_000002", "2009_000001", "2010_000005"]
    for k, i in enumerate(ids):
        _jpeg(base / "images" / f"{i}.jpg", color=(10 * k, 100, 200))
    _jpeg(base / "images" / "2007_000032.jpg", mode="L", color=(90, 90, 90))  # a grayscale JPEG
    # val masks: official palette PNGs with the 255 boundary band.
    _palette_png(base / "SegmentationClass" / "2007_000032.png", _labels(0, 15, 255, 20))
    _palette_png(base / "SegmentationClass" / "2008_000002.png", _labels(0, 1))
    # train masks: SBD index PNGs (L), values chosen to tell the two folders apart.
    _gray_png(base / "SegmentationClassAug" / "2009_000001.png", _labels(0, 7))
    _gray_png(base / "SegmentationClassAug" / "2010_000005.png", _labels(3, 255))
    _gray_png(base / "SegmentationClassAug" / "2008_000002.png", _labels(0, 2))
    _lines(base / "sets" / "val.txt", ["2007_000032", "2008_000002"])
    _lines(base / "sets" / "train.txt", ["2009_000001"])
    _lines(base / "sets" / "trainaug.txt", ["2009_000001", "2010_000005", "2008_000002"])
    _lines(base / "sets" / "trainaug_128_42.txt", ["2010_000005"])  # MoSiC: sets/<name>.txt
    _lines(base / "sets" / "1_div_64" / "trainaug_64_42.txt", ["2010_000005", "2009_000001"])  # HB file_sets
    return tmp_path


def test_voc_val_reads_palette_masks_and_rgb(voc_root: Path):
    ds = image_dataset("voc", voc_root, "val")
    assert isinstance(ds, SegmentationSet) and isinstance(ds, VOCSegmentation)
    assert (ds.name, ds.num_classes, ds.ignore_index, len(ds)) == ("voc/val", 21, 255, 2)
    assert ds.class_names == VOC_CLASSES and ds.class_names[15] == "person"
    mask = ds.mask(0)
    assert mask.dtype == np.uint8 and mask.shape == (H, W)
    np.testing.assert_array_equal(mask, _labels(0, 15, 255, 20))  # palette index round trip, 255 kept
    np.testing.assert_array_equal(ds.mask(1), _labels(0, 1))
    gray = ds.image(0)  # grayscale JPEG -> 3 equal channels
    assert gray.dtype == np.uint8 and gray.shape == (H, W, 3)
    assert np.array_equal(gray[..., 0], gray[..., 1]) and abs(int(gray[0, 0, 0]) - 90) <= 2
    rgb = ds.image(1)
    assert np.abs(rgb[2, 3].astype(int) - (10, 100, 200)).max() <= 4


def test_voc_trainaug_and_fraction_splits_use_segmentation_class_aug(voc_root: Path):
    aug = image_dataset("voc", voc_root / "VOCSegmentation", "trainaug")  # HB v2 passes the folder itself
    assert aug.name == "voc/trainaug" and len(aug) == 3
    assert [Path(p).stem for p in aug.image_paths] == ["2009_000001", "2010_000005", "2008_000002"]
    np.testing.assert_array_equal(aug.mask(2), _labels(0, 2))  # the Aug mask, not SegmentationClass's (0, 1)
    np.testing.assert_array_equal(aug.mask(1), _labels(3, 255))
    assert aug.mask_paths[0].parent.name == "SegmentationClassAug"
    frac = image_dataset("voc", voc_root, "trainaug_128_42")
    assert frac.ids == ["2010_000005"] and frac.name == "voc/trainaug_128_42"
    nested = image_dataset("voc", voc_root, "trainaug_64_42")
    assert nested.ids == ["2010_000005", "2009_000001"]
    assert image_dataset("voc", voc_root, "train").ids == ["2009_000001"]


def test_voc_official_layout_without_aug(tmp_path: Path):
    base = tmp_path / "VOC2012"
    _jpeg(base / "JPEGImages" / "a.jpg")
    _palette_png(base / "SegmentationClass" / "a.png", _labels(0, 4))
    _lines(base / "ImageSets" / "Segmentation" / "train.txt", ["a"])
    _lines(base / "ImageSets" / "Segmentation" / "trainaug.txt", ["a"])
    ds = image_dataset("voc", base, "train")  # falls back to SegmentationClass
    np.testing.assert_array_equal(ds.mask(0), _labels(0, 4))
    with pytest.raises(FileNotFoundError, match="SegmentationClassAug"):
        image_dataset("voc", base, "trainaug")


def test_voc_clear_errors(voc_root: Path, tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"sets/test\.txt.*splits found: \[.*'trainaug'.*'val'"):
        image_dataset("voc", voc_root, "test")
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        image_dataset("voc", tmp_path / "nowhere", "val")
    (voc_root / "VOCSegmentation" / "SegmentationClass" / "2008_000002.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of 2 masks .* \(first: .*SegmentationClass/2008_000002\.png\)"):
        image_dataset("voc", voc_root, "val")
    with pytest.raises(ValueError, match="unknown image dataset kind 'cityscapes'"):
        image_dataset("cityscapes", voc_root, "val")


def test_rgb_mask_is_rejected(tmp_path: Path):
    path = tmp_path / "m.png"
    Image.new("RGB", (W, H)).save(path)
    with pytest.raises(ValueError, match="mode RGB"):
        read_label_png(path)


# --------------------------------------------------------------------------------------------- ADE20K


@pytest.fixture
def ade_root(tmp_path: Path) -> Path:
    """<ADE_ROOT>/ADEChallengeData2016/{images,annotations}/{training,validation} and sets/."""
    base = tmp_path / "ADEChallengeData2016"
    for split, ids in {
        "training": ["ADE_train_00000002", "ADE_train_00000001"],
        "validation": ["ADE_val_00000001"],
    }.items():
        for i in ids:
            _jpeg(base / "images" / split / f"{i}.jpg")
    _gray_png(base / "annotations" / "training" / "ADE_train_00000001.png", _labels(0, 1, 150))
    _gray_png(base / "annotations" / "training" / "ADE_train_00000002.png", _labels(13, 0))
    _gray_png(base / "annotations" / "validation" / "ADE_val_00000001.png", _labels(3, 0, 42))
    _lines(base / "sets" / "training_128_42.txt", ["ADE_train_00000002"])
    return tmp_path


def test_ade20k_splits_classes_and_raw_values(ade_root: Path):
    val = image_dataset("ade20k", ade_root, "validation")
    assert (val.name, val.num_classes, val.ignore_index, len(val)) == ("ade20k/validation", 151, 0, 1)
    assert val.class_names == ADE20K_CLASSES and val.class_names[:2] == ["other", "wall"]
    np.testing.assert_array_equal(val.mask(0), _labels(3, 0, 42))
    train = image_dataset("ade20k", ade_root / "ADEChallengeData2016", "train")  # alias, folder itself as root
    assert train.ids == ["ADE_train_00000001", "ADE_train_00000002"]  # sorted listing
    np.testing.assert_array_equal(train.mask(0), _labels(0, 1, 150))
    frac = image_dataset("ade20k", ade_root, "training_128_42")
    assert frac.ids == ["ADE_train_00000002"] and frac.name == "ade20k/training_128_42"
    np.testing.assert_array_equal(frac.mask(0), _labels(13, 0))
    assert frac.image(0).shape == (H, W, 3)


def test_ade20k_clear_errors(ade_root: Path):
    with pytest.raises(FileNotFoundError, match=r"sets/training_8_42\.txt does not exist"):
        image_dataset("ade20k", ade_root, "training_8_42")
    (ade_root / "ADEChallengeData2016" / "annotations" / "validation" / "ADE_val_00000001.png").unlink()
    (ade_root / "ADEChallengeData2016" / "annotations" / "validation").rmdir()
    with pytest.raises(FileNotFoundError, match=r"mask folder .*annotations/validation does not exist"):
        image_dataset("ade20k", ade_root, "validation")


# --------------------------------------------------------------------------------------------- COCO


@pytest.fixture
def coco_root(tmp_path: Path) -> Path:
    """<COCO_ROOT>/images/val2017 + stuff pixel maps + panoptic semantic PNGs (the paths NeCo and HB read)."""
    for i in ["000000000139", "000000000285"]:
        _jpeg(tmp_path / "images" / "val2017" / f"{i}.jpg", mode="L", color=(120, 120, 120))
    stuff = tmp_path / "annotations" / "stuff_annotations" / "stuff_val2017_pixelmaps"
    # 0 things, 96 building-other, 92 banner (textile), 157 sky-other, 179 waterdrops (water), 183 other
    _gray_png(stuff / "000000000139.png", _labels(0, 96, 92, 157, 179, 183))
    _gray_png(stuff / "000000000285.png", _labels(101, 0))
    things = tmp_path / "annotations" / "val2017"
    # 0 unlabelled, 1 person, 3 car, 18 dog, 84 book, 92 stuff, 200 stuff (merged)
    _gray_png(things / "000000000139.png", _labels(0, 1, 3, 18, 84, 92, 200))
    _gray_png(things / "000000000285.png", _labels(27, 0))
    return tmp_path


def test_coco_stuff_15_mapping(coco_root: Path):
    ds = image_dataset("coco_stuff", coco_root, "val")
    assert isinstance(ds, COCOStuffSegmentation) and ds.variant == "stuff"
    assert (ds.name, ds.num_classes, ds.ignore_index, len(ds)) == ("coco_stuff/val2017", 15, 255, 2)
    assert ds.class_names == COCO_STUFF_CLASSES and ds.class_names[0] == "building" and ds.class_names[14] == "window"
    idx = {n: k for k, n in enumerate(COCO_STUFF_CLASSES)}
    expected = _labels(255, idx["building"], idx["textile"], idx["sky"], idx["water"], 255)
    np.testing.assert_array_equal(ds.mask(0), expected)
    np.testing.assert_array_equal(ds.mask(1), _labels(idx["floor"], 255))  # 101 carpet -> floor
    img = ds.image(0)  # grayscale COCO JPEG -> RGB
    assert img.shape == (H, W, 3) and np.array_equal(img[..., 0], img[..., 2])


def test_coco_things_12_mapping(coco_root: Path):
    ds = image_dataset("coco_things", coco_root, "val2017")
    assert (ds.name, ds.num_classes, ds.ignore_index) == ("coco_things/val2017", 12, 255)
    assert ds.class_names == COCO_THINGS_CLASSES and ds.class_names[0] == "accessory"
    idx = {n: k for k, n in enumerate(COCO_THINGS_CLASSES)}
    expected = _labels(255, idx["person"], idx["vehicle"], idx["animal"], idx["indoor"], 255, 255)
    np.testing.assert_array_equal(ds.mask(0), expected)
    np.testing.assert_array_equal(ds.mask(1), _labels(idx["accessory"], 255))  # 27 backpack


def test_coco_clear_errors(coco_root: Path):
    bad = coco_root / "annotations" / "stuff_annotations" / "stuff_val2017_pixelmaps" / "000000000285.png"
    _gray_png(bad, _labels(5, 0))  # a 0-indexed stuffthingmap value, not a pixel-map id
    ds = image_dataset("coco_stuff", coco_root, "val2017")
    with pytest.raises(ValueError, match=r"values \[5\] are not COCO-Stuff"):
        ds.mask(1)
    with pytest.raises(FileNotFoundError, match=r"image folder .*images/train2017 does not exist"):
        image_dataset("coco_stuff", coco_root, "train2017")
    with pytest.raises(ValueError, match="unknown coco_things split 'test'"):
        image_dataset("coco_things", coco_root, "test")


# --------------------------------------------------------------------------------------------- DAVIS-2017


@pytest.fixture
def davis_root(tmp_path: Path) -> Path:
    """DAVIS/{JPEGImages,Annotations}/480p/<video>/%05d.{jpg,png} and ImageSets/2017/{train,val}.txt."""
    root = tmp_path / "DAVIS"
    videos = {"bike-packing": 3, "blackswan": 2, "bear": 2}
    for v, n in videos.items():
        for t in range(n):
            _jpeg(root / "JPEGImages" / "480p" / v / f"{t:05d}.jpg", color=(30 * t, 60, 90))
            _palette_png(root / "Annotations" / "480p" / v / f"{t:05d}.png", _labels(0, 1, 2) if t else _labels(2, 0))
    _lines(root / "ImageSets" / "2017" / "val.txt", ["blackswan", "bike-packing"])
    _lines(root / "ImageSets" / "2017" / "train.txt", ["bear"])
    return root


def test_davis_split_frames_and_instance_ids(davis_root: Path):
    ds = video_dataset("davis", davis_root, "val")
    assert isinstance(ds, VideoSegmentationSet) and isinstance(ds, DAVISVideos)
    assert ds.name == "davis/val" and ds.video_ids == ["bike-packing", "blackswan"]  # sorted, bear is train
    assert ds.num_frames("bike-packing") == 3 and ds.num_frames("blackswan") == 2
    frames, labels = ds.read("bike-packing", [2, 0])
    assert frames.shape == (2, H, W, 3) and frames.dtype == np.uint8
    assert labels.shape == (2, H, W) and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels[0], _labels(0, 1, 2))  # instance ids kept, not merged
    np.testing.assert_array_equal(labels[1], _labels(2, 0))
    assert abs(int(frames[0, 0, 0, 0]) - 60) <= 4 and abs(int(frames[1, 0, 0, 0])) <= 4  # frame order follows indices
    assert video_dataset("davis", davis_root).video_ids == ["bear", "bike-packing", "blackswan"]


def test_davis_clear_errors(davis_root: Path):
    with pytest.raises(FileNotFoundError, match=r"ImageSets/2017/test-dev\.txt does not exist"):
        video_dataset("davis", davis_root, "test-dev")
    ds = video_dataset("davis", davis_root, "val")
    with pytest.raises(IndexError, match="out of range"):
        ds.read("blackswan", [2])
    with pytest.raises(KeyError, match="bear"):
        ds.num_frames("bear")
    for f in (davis_root / "Annotations" / "480p" / "blackswan").iterdir():
        f.unlink()
    (davis_root / "Annotations" / "480p" / "blackswan").rmdir()
    with pytest.raises(FileNotFoundError, match=r"1 of 2 videos .*Annotations/480p/blackswan"):
        video_dataset("davis", davis_root, "val")
    with pytest.raises(ValueError, match="unknown video dataset kind"):
        video_dataset("kinetics", davis_root)


# --------------------------------------------------------------------------------------------- YouTube-VOS


def _ytvos_tree(base: Path) -> None:
    """base/{JPEGImages,Annotations}/<vid>/%05d.* and meta.json (the YTVOS-2019 train structure)."""
    objects = {
        "0a2f2bd294": {"1": "zebra", "2": "ant", "3": "zebra"},
        "0b6f9105fc": {"1": "person"},
        "0c04834d61": {"1": "ant"},
    }
    for v in objects:
        for t in range(0, 15, 5):  # the 6 fps release: every 5th frame, each annotated
            _jpeg(base / "JPEGImages" / v / f"{t:05d}.jpg")
    # only two of the three frames of the first video carry masks: read only those
    _palette_png(base / "Annotations" / "0a2f2bd294" / "00000.png", _labels(0, 1, 2, 3))
    _palette_png(base / "Annotations" / "0a2f2bd294" / "00010.png", _labels(3, 0))
    for v in ("0b6f9105fc", "0c04834d61"):
        for t in range(0, 15, 5):
            _palette_png(base / "Annotations" / v / f"{t:05d}.png", _labels(0, 1))
    meta = {
        "videos": {
            v: {"objects": {k: {"category": c, "frames": ["00000"]} for k, c in objs.items()}}
            for v, objs in objects.items()
        }
    }
    (base / "meta.json").write_text(json.dumps(meta))


def test_ytvos_list_file_split_and_category_merge(tmp_path: Path):
    root = tmp_path / "train"
    _ytvos_tree(root)
    _lines(root / "val1.txt", ["0a2f2bd294", "0b6f9105fc"])  # TimeT_clean val.txt ids
    ds = video_dataset("ytvos", root, "val1.txt")
    assert isinstance(ds, YTVOSVideos) and ds.name == "ytvos/val1"
    assert ds.video_ids == ["0a2f2bd294", "0b6f9105fc"]
    assert ds.category_names == ["ant", "person", "zebra"]  # from all of meta.json, id = index + 1
    assert ds.num_frames("0a2f2bd294") == 2  # annotated frames only
    frames, labels = ds.read("0a2f2bd294", [0, 1])
    assert frames.shape == (2, H, W, 3)
    np.testing.assert_array_equal(labels[0], _labels(0, 3, 1, 3))  # instances 1 and 3 (zebra) share label 3
    np.testing.assert_array_equal(labels[1], _labels(3, 0))
    _, person = ds.read("0b6f9105fc", [2])
    np.testing.assert_array_equal(person[0], _labels(0, 2))


def test_ytvos_subfolder_split_and_errors(tmp_path: Path):
    _ytvos_tree(tmp_path / "val1")  # Timetuning's val1/{JPEGImages, Annotations, meta.json}
    ds = video_dataset("ytvos", tmp_path, "val1")
    assert ds.name == "ytvos/val1" and len(ds.video_ids) == 3
    _, labels = ds.read("0c04834d61", [1])
    np.testing.assert_array_equal(labels[0], _labels(0, 1))  # ant
    _palette_png(tmp_path / "val1" / "Annotations" / "0c04834d61" / "00005.png", _labels(0, 7))
    with pytest.raises(ValueError, match=r"instance ids \[7\] have no category"):
        ds.read("0c04834d61", [1])
    _lines(tmp_path / "val1.txt", ["0a2f2bd294"])
    with pytest.raises(FileNotFoundError, match="JPEGImages/0a2f2bd294"):  # list ids are relative to the root
        video_dataset("ytvos", tmp_path, "val1.txt")
    with pytest.raises(FileNotFoundError, match=r"split file .*train1\.txt does not exist"):
        video_dataset("ytvos", tmp_path, "train1.txt")
    (tmp_path / "val1" / "meta.json").unlink()
    with pytest.raises(FileNotFoundError, match="meta.json"):
        video_dataset("ytvos", tmp_path, "val1")


# --------------------------------------------------------------------------------------------- synthetic


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = SyntheticConfig(
        seed=0,
        num_videos=2,
        num_frames=3,
        height=32,
        width=32,
        num_classes=5,
        min_objects=2,
        max_objects=3,
        max_speed=1.0,
        camera_speed=0.0,
        scale_change=1.0,
        appearance_drift=0.0,
        faces=1,
        turn_frames=1,
        turn_travel=0.0,
        texture_seed=0,
        noise=0.0,
        track_grid=2,
        write_mp4=False,
        images_train=2,
        images_val=1,
    )
    out = tmp_path_factory.mktemp("synthetic")
    generate_synthetic(cfg, out)
    return out


def test_synthetic_image_set(synthetic_root: Path):
    classes = json.loads((synthetic_root / "voc" / "classes.json").read_text())
    train = image_dataset("synthetic", synthetic_root, "train")
    val = image_dataset("synthetic", synthetic_root / "voc", "val")
    assert (len(train), len(val), val.name) == (2, 1, "synthetic/val")
    assert val.num_classes == len(classes) == 6 and val.class_names == classes and val.ignore_index == 255
    mask, image = val.mask(0), val.image(0)
    assert mask.shape == (32, 32) and image.shape == (32, 32, 3) and image.dtype == np.uint8
    values = set(np.unique(mask).tolist())
    assert 255 in values and values - {255} <= set(range(val.num_classes))


def test_synthetic_video_set_maps_instances_to_categories(synthetic_root: Path):
    ds = video_dataset("synthetic", synthetic_root)
    assert ds.name == "synthetic/all" and ds.video_ids == ["synth_00000", "synth_00001"]
    meta = json.loads((synthetic_root / "ytvos" / "meta.json").read_text())["videos"]
    names = sorted({o["category"] for v in meta.values() for o in v["objects"].values()})
    assert ds.category_names == names
    for vid in ds.video_ids:
        assert ds.num_frames(vid) == 3
        frames, labels = ds.read(vid, [0, 2])
        assert frames.shape == (2, 32, 32, 3) and labels.shape == (2, 32, 32)
        lut = np.zeros(256, np.uint8)
        for inst, obj in meta[vid]["objects"].items():
            lut[int(inst)] = names.index(obj["category"]) + 1
        raw = np.stack(
            [read_label_png(synthetic_root / "ytvos" / "Annotations" / vid / f"{t:05d}.png") for t in (0, 2)]
        )
        np.testing.assert_array_equal(labels, lut[raw])
