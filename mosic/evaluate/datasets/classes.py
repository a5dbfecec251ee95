"""Class tables of the evaluation datasets: VOC and ADE20K names, COCO category -> supercategory maps."""

from __future__ import annotations

import numpy as np

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


STUFF_LUT = _lut(_STUFF_IDS)
STUFF_VALID = np.zeros(256, dtype=bool)
STUFF_VALID[[0, *range(92, 184)]] = True
THINGS_LUT = _lut(_THING_IDS)
