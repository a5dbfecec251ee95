"""mosic.motion_study.face_linking separates what links an object's two faces from what the clip shares.

Oracle features on a tiny turning-object dataset: features that name the object under each patch link every object's
faces and nothing else (linking 100 points); features that name the video only carry context (own and context both
100, linking 0); features that name the face an object shows link nothing.
"""

import dataclasses
import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import Image

from mosic.config.schema import SyntheticConfig
from mosic.data.synthetic import generate_synthetic
from mosic.motion_study import face_linking

TURNING = SyntheticConfig(
    seed=5, num_videos=3, num_frames=12, height=64, width=64, num_classes=6, faces=2, turn_frames=3,
    turn_travel=0.0, texture_seed=0, min_objects=2, max_objects=3, max_speed=1.0, camera_speed=0.5,
    scale_change=1.0, appearance_drift=0.0, noise=0.0, track_grid=4, write_mp4=False, images_train=1, images_val=1,
)  # fmt: skip
PATCH = 8


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("turning")
    generate_synthetic(TURNING, root)
    return root / "ytvos"


class Oracle:
    """Features [T, S, S, D] of frames, computed from what the dataset knows about each frame (looked up by its
    pixels): `kind` = object (one-hot of the video's object under the patch), video (one-hot of the video) or face
    (one-hot of the face the object under the patch shows)."""

    def __init__(self, videos, kind: str) -> None:
        self.kind, self.lookup = kind, {}
        names = sorted(p.name for p in (videos / "JPEGImages").iterdir())
        for v, name in enumerate(names):
            scene = json.loads((videos / "Scenes" / f"{name}.json").read_text())
            for jpg in sorted((videos / "JPEGImages" / name).glob("*.jpg")):
                t = int(jpg.stem)
                pixels = np.asarray(Image.open(jpg).convert("RGB"))
                mask = np.asarray(Image.open(videos / "Annotations" / name / f"{jpg.stem}.png"))
                faces = {o["instance"]: o["shown"][-1 if t >= o["turn_start"] + o["turn_frames"] else 0]
                         for o in scene["objects"]}  # fmt: skip
                self.lookup[hashlib.sha1(pixels.tobytes()).hexdigest()] = (v, mask, faces)

    def __call__(self, frames: np.ndarray) -> torch.Tensor:
        out = []
        for pixels in frames:
            v, mask, faces = self.lookup[hashlib.sha1(np.ascontiguousarray(pixels).tobytes()).hexdigest()]
            s = mask.shape[0] // PATCH
            under = mask.reshape(s, PATCH, s, PATCH).transpose(0, 2, 1, 3).reshape(s, s, -1)
            ids = torch.from_numpy(np.apply_along_axis(lambda x: np.bincount(x).argmax(), -1, under))
            if self.kind == "video":
                feats = torch.zeros(s, s, 16)
                feats[..., v] = 1
            elif self.kind == "object":
                feats = torch.nn.functional.one_hot(ids.long(), 16).float()
            else:
                face = torch.tensor([[1 + faces.get(int(i), -1) for i in row] for row in ids])
                feats = torch.nn.functional.one_hot(face.long(), 16).float()
            out.append(feats)
        return torch.stack(out)


def test_features_that_name_the_object_link_its_faces(videos):
    out = face_linking(Oracle(videos, "object"), videos, frame_step=1)
    assert out["own"] == pytest.approx(100) and out["context"] == pytest.approx(0)
    assert out["linking"] == pytest.approx(100)


def test_context_alone_links_nothing(videos):
    out = face_linking(Oracle(videos, "video"), videos, frame_step=1)
    assert out["own"] == pytest.approx(100) and out["context"] == pytest.approx(100)
    assert out["linking"] == pytest.approx(0)


def test_appearance_of_the_face_links_nothing(videos):
    out = face_linking(Oracle(videos, "face"), videos, frame_step=2)
    assert out["own"] == pytest.approx(0) and out["linking"] == pytest.approx(0)


def test_videos_without_two_objects_on_two_faces_are_refused(tmp_path):
    generate_synthetic(dataclasses.replace(TURNING, num_videos=1, min_objects=1, max_objects=1), tmp_path)
    with pytest.raises(ValueError, match="two objects"):
        face_linking(Oracle(tmp_path / "ytvos", "object"), tmp_path / "ytvos", frame_step=1)


class Images:
    """An image segmentation set of solid-colour objects on a black background: image i shows class c on face f
    as a 16 x 16 block whose colour encodes (c, f); masks give the class."""

    ignore_index = 255

    def __init__(self, face: int, classes: int = 3, copies: int = 2) -> None:
        self.items = [(c, face) for c in range(1, classes + 1) for _ in range(copies)]

    def __len__(self) -> int:
        return len(self.items)

    def image(self, i: int) -> np.ndarray:
        c, f = self.items[i]
        out = np.zeros((32, 32, 3), np.uint8)
        out[8:24, 8:24] = (c, f, i)  # the pixels carry the class, the face and the copy
        return out

    def mask(self, i: int) -> np.ndarray:
        out = np.zeros((32, 32), np.uint8)
        out[8:24, 8:24] = self.items[i][0]
        out[0, :] = 255  # an ignored row: never an object patch
        return out


def features(name: str):
    """Features [B, 4, 4, 16] of Images: `name` = class (one-hot of the class under the patch), swapped (face 1 of
    class c looks like face 0 of class c + 1) or background (every patch, objects too, the same vector)."""

    def extract(images: np.ndarray) -> torch.Tensor:
        blocks = torch.from_numpy(images[:, ::8, ::8].astype(np.int64))  # [B, 4, 4, 3]: one pixel per 8 x 8 patch
        c, f = blocks[..., 0], blocks[..., 1]
        if name == "swapped":
            c = torch.where((c > 0) & (f == 1), c % 3 + 1, c)
        if name == "background":
            return torch.nn.functional.one_hot(torch.zeros_like(c), 16).float()
        return torch.nn.functional.one_hot(c, 16).float() + 0.01 * blocks[..., 2:3]  # copies differ a little

    return extract


def test_object_retrieval_scores_class_alignment_across_faces():
    from mosic.motion_study import object_retrieval

    assert object_retrieval(features("class"), Images(0), Images(1)) == pytest.approx(100)
    assert object_retrieval(features("swapped"), Images(0), Images(1)) == pytest.approx(0)
    assert object_retrieval(features("swapped"), Images(1), Images(1)) == pytest.approx(100)
    # Background and ignored patches never enter: object patches that all look alike retrieve the first memory
    # patch's class, right for one class of three.
    assert object_retrieval(features("background"), Images(0), Images(1)) == pytest.approx(100 / 3)
    with pytest.raises(ValueError, match="no patch"):
        object_retrieval(features("class"), Images(0), Images(1), coverage=1.01)
