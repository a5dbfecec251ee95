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
  With turning objects (``objects.json`` ``faces`` F > 1, :func:`synthetic_faces`) also the splits
  ``{train,val}_face<f>``: the same scenes with every object showing face f.
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

from mosic.evaluate.datasets.classes import ADE20K_CLASSES, COCO_STUFF_CLASSES, COCO_THINGS_CLASSES, VOC_CLASSES
from mosic.evaluate.datasets.files import read_label_png
from mosic.evaluate.datasets.images import (
    IMAGE_KINDS,
    ADE20KSegmentation,
    COCOStuffSegmentation,
    SyntheticSegmentation,
    VOCSegmentation,
    image_dataset,
    synthetic_faces,
)
from mosic.evaluate.datasets.videos import VIDEO_KINDS, DAVISVideos, YTVOSVideos, video_dataset

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
    "synthetic_faces",
    "video_dataset",
]
