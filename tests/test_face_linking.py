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
