"""The procedural synthetic video dataset: the project's embedded demo data, with exact ground truth.

Each video is a :class:`Scene`, a handful of numbers drawn from a per-video random stream: textured objects
of 5-6 classes (colours are random per instance) translate, rotate, scale up to ``scale_change``x and occlude
each other in a fixed depth order over a blotchy background that the camera pans across; a global
gain/offset and Gaussian noise change the brightness. Appearance drifts along every object track (hue
rotation and lighting change, plus the scale change), and motion spans several 8-px patches per clip, so that
only correspondences that follow motion link matching features; the design follows
`shared/reference/synthetic_feasibility.md`, where a dataset with little motion and no drift let a "static"
control match ground-truth tracks.

Turning objects (``faces > 1``, the demo). Hue, lighting and scale drift are what photometric and crop
augmentation fake, so they cannot show that motion teaches anything. With ``faces = F >= 2`` every class owns
F unrelated appearances and every object *turns* from one to another while it moves, like a card flipping or
a die rolling over to show another side; nothing but the track links the two sides. Decisions:

- *Faces* are texture families (:mod:`mosic.data.textures`) drawn from ``texture_seed`` (scenes come from
  ``seed``, so another ``texture_seed`` shows the same scenes in unseen textures). A face is a pattern kind with
  its structural parameters and period band, plus a colour tone (saturation and value of its two colours and
  their hue difference); the F faces of a class differ in all three, so they share no pattern or colour
  statistics. Each instance recolours every face of its class with its own random base hue (as colours were
  random per instance before), keeping the tone, so all instances of a face are recognisable as that face
  while absolute hue says nothing about class or face.
- *Shape* does not give the class away: with turning objects it is random per instance among the six shapes,
  shared by all classes (with ``faces = 1`` each class keeps its own shape, as before). An outline still links
  an object's two faces without its track (the same silhouette before and after the turn); ``shape`` = one
  shape name gives every turning object that outline, so only the track links them. The shape is drawn either
  way, so the scenes are otherwise the same.
- *The turn* (:class:`SceneObject`): once per object, from a random face ``f0`` to a random other face
  ``f1``, over ``turn_frames`` frames, its middle uniform in the middle 40 % of the video (30-70 %). The border
  between the faces sweeps across the object along a random direction; every surface point switches within
  ~1/5 of the turn. A turn changes appearance only: pose, shape, masks, tracks and visibility are the same as
  without it, so :func:`ground_truth_tracks` is exact through the turn. Mid-video turns are mid-clip for clips
  that span most of the video (the original setting, T = 12 at step 6 on 30-fps video; e.g. T = 12 at
  ``clips.step`` 3 over the demo's 36-frame videos); shorter clips (step 1: 12 of 36 frames) overlap a given
  object's 12-frame turn ~80 % of the time in the demo, and nearly every clip overlaps some turn.
- *Speed*: a turning object travels at least ``turn_travel`` pixels during its turn (its speed is drawn in
  ``[max(0.4 max_speed, turn_travel / turn_frames), max_speed]``, the config refuses ``turn_travel > max_speed
  * turn_frames``), so a point that stays where it was has left the object by the time it shows its other
  face — a "static" correspondence links face ``f0`` to something else. The demo asks for 2 model patches in
  pixels of the video: the model sees ``patch``-px patches (16 for test_vit, 14 for DINOv2) of a
  ``train.input_size`` crop of the cache, the cache is the video resized to ``track.width``, so one patch is
  ``patch * (crop side / input_size) * (width / track.width)`` video pixels: 16 px at the demo's full-frame
  crop (16 * 128/128 * 128/128), 10 px at its smallest crop (area 0.4); ``turn_travel = 32``.
- ``faces = 1`` reproduces the original generator byte for byte (frames, masks, tracks, VOC images): one
  hand-made (texture, shape) pair per class, no turns, ``texture_seed``, ``turn_frames`` and ``turn_travel``
  unused. Only the scene JSON (format ``/2``) and the two new VOC records below differ.

Rendering is analytic and vectorised: each pixel is inverse-mapped into each object's coordinates, where
shapes (signed distance functions, anti-aliased analytically) and textures are defined, so masks and
trajectories come from the same transforms as the pixels. A scene is fully determined by its parameters
(:func:`load_scene` restores one from the JSON that :func:`generate_synthetic` writes), so exact tracks for
any query can be recomputed later with :func:`ground_truth_tracks` (the ``ground_truth`` tracker,
:mod:`mosic.tracking.ground_truth`, does so from ``Scenes/``).

Conventions (everywhere in this package): image points are ``(x, y)`` in pixels, origin at the top-left,
pixel centres at integer coordinates, so a frame covers ``[-0.5, W - 0.5) x [-0.5, H - 0.5)``. Object
instance ids are 1..n in depth order (a higher id is drawn on top); 0 is the background. Frame ``t`` counts
from 0. Faces are numbered 0..F-1 within their class.

The package, by concept: :mod:`.scene` (the :class:`Scene` record and its JSON), :mod:`.draw` (sampling a
scene), :mod:`.geometry` (poses, what is on top at a point, exact tracks), :mod:`.render` (frames, masks and
VOC images) and :mod:`.writer` (the on-disk layouts, :func:`generate_synthetic`, with the output layout).
Everything public is importable from here.
"""

from mosic.data.synthetic.draw import check_turning, draw_scene
from mosic.data.synthetic.geometry import face_at, ground_truth_tracks, instance_at
from mosic.data.synthetic.render import (
    SyntheticImage,
    SyntheticVideo,
    image_ids,
    render_frame,
    render_image,
    render_scene,
    render_video,
)
from mosic.data.synthetic.scene import SCENE_FORMAT, Background, Face, Scene, SceneObject, load_scene, save_scene
from mosic.data.synthetic.writer import OBJECTS_FORMAT, generate_synthetic, voc_palette

__all__ = [
    "Face",
    "SceneObject",
    "Background",
    "Scene",
    "SyntheticVideo",
    "SyntheticImage",
    "SCENE_FORMAT",
    "OBJECTS_FORMAT",
    "check_turning",
    "draw_scene",
    "render_frame",
    "render_scene",
    "render_video",
    "render_image",
    "image_ids",
    "instance_at",
    "face_at",
    "ground_truth_tracks",
    "load_scene",
    "save_scene",
    "voc_palette",
    "generate_synthetic",
]
