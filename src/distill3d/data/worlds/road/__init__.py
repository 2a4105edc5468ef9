"""The road world: procedural street scenes with KITTI's camera, label conventions and file format.

It stands in for the KITTI 3D object benchmark (monocular 3D detection, SKD-WM3D).  Every frame is a pure
function of ``(world, split, index, seed)``: its random stream is
``numpy.random.default_rng([WORLD_ID, seed, split_id, index])``, never global state.

Camera and frames
-----------------
* Labels live in KITTI's *rectified camera 0* frame (x right, y down, z forward, metres).  The flat ground
  is the plane ``y = CAMERA_HEIGHT = 1.65`` m (KITTI's camera height); every object stands on it.
* The image is KITTI's left colour camera: ``P2`` of training frame 000000 (:data:`KITTI_P2`,
  ``fx = fy = 721.5377``, ``cx = 609.5593``, ``cy = 172.854`` plus the translation column of the 6 cm
  stereo offset) for the original 375×1242 (H×W) image.  ``P2 = K2·[I | t2]``; the renderer places the
  camera at ``X_cam2 = X_rect + t2``, so the rendered image, the rendered depth and ``P2`` agree exactly.
* Images are rendered at ``image_size`` (default 96×320, H×W) with the intrinsics scaled by
  :func:`distill3d.geometry.camera.resize_intrinsics` (half-pixel convention, so the image is what an
  area-downsampling of the full-size image would show): :func:`image_intrinsics`.
* **2D boxes, truncation and ``P2`` are in the ORIGINAL 1242×375 KITTI pixel frame** whatever the
  rendered size, so KITTI's Easy / Moderate / Hard filters (box height ≥ 40 / 25 / 25 px) mean the same
  thing as on KITTI.  :func:`image_to_kitti_pixels` / :func:`kitti_to_image_pixels` convert coordinates.
  ``depth`` and ``K`` belong to the rendered image.

Difficulty presets
------------------
:func:`road_config` (``difficulty=`` of :class:`RoadDataset`; :data:`ROAD_PRESETS`): ``hard`` is the full street
(cars up to 60 m, pedestrians, cyclists, buildings, trees); ``standard`` (benchmarks, demo) the same street with
objects within 25 m; ``easy`` 1-4 cars within 20 m on a bare ground plane.  Why 25 m: at the 96×320 input a
car 60 m away is 5 px high and one input pixel of its box bottom is ±2 m of depth; with objects within 25 m the
supervised detector reaches KITTI-like Moderate AP in the benchmark's budget (``benchmarks/results/skd_wm3d.md``).

Labels (``RoadFrame.objects``: one :class:`~distill3d.metrics.kitti.FrameAnnotations` record)
-----------------------------------------------------------------------------------------
* ``boxes3d`` ``(x, y, z, h, w, l, ry)``: bottom centre, KITTI's convention (:mod:`distill3d.geometry.boxes3d`);
  the box is tight around the object's primitives.
* ``boxes2d`` ``(x1, y1, x2, y2)``: the tight box of the object's *amodal* silhouette (the object rendered
  alone, so occluders do not shrink it, as KITTI's annotators drew occluded objects), read off the rendered
  instance map at the render resolution, mapped to the original frame and clipped to
  ``[0, 1241] × [0, 374]``.  (``RoadConfig(box2d_source="projection")`` uses the enclosing box of the
  projected 3D box instead.)
* ``truncation = 1 − area(projected 3D box ∩ image) / area(projected 3D box)`` with the enclosing 2D box of
  the projected 3D box, in [0, 1].
* ``occlusion``: from the visible fraction ``f`` = (pixels of the object in the full render) / (pixels of its
  amodal silhouette inside the image): ``f ≥ 0.8 → 0`` (fully visible), ``f ≥ 0.5 → 1`` (partly occluded),
  ``f > 0.1 → 2`` (largely occluded), else ``3`` (KITTI's "unknown", which every difficulty excludes).
* ``alpha = ry − atan2(x, z)`` wrapped to [−π, π).
* Objects with no visible pixel (fully hidden or outside the image) are dropped.  Objects whose 2D box is
  lower than ``RoadConfig.min_box_height`` (15 px in the original frame) become DontCare regions.

Depth
-----
``depth`` is the rendered z of camera 2 in metres, 0 where no surface is hit (sky; KITTI's "invalid").
:func:`estimated_depth` degrades it like a monocular depth estimator (global scale error, smooth distortion,
blurred discontinuities, noise growing with distance): SKD-WM3D takes its depth from an estimator, never
from ground truth.

Speed (2 shared CPU cores, 96×320, 1 ray/pixel, amodal silhouettes included): ≈60 frames/s for
:func:`road_frames`, a few % less through :class:`RoadDataset` (its depth estimate is vectorised over the batch
and adds ≈1.5 ms per frame; ``benchmarks/world_speed.py`` measures both); 2×2 anti-aliasing
(``RoadConfig(samples_per_side=2)``) ≈20 frames/s; full-size 375×1242 export ≈2-3 frames/s.
"""

from __future__ import annotations

from distill3d.data.worlds.road.dataset import RoadDataset
from distill3d.data.worlds.road.depth import estimated_depth
from distill3d.data.worlds.road.export import export_kitti
from distill3d.data.worlds.road.frames import RoadFrame, render_road_scenes, road_frame, road_frames
from distill3d.data.worlds.road.scene import (
    CAMERA_HEIGHT,
    CLASS_NAMES,
    GROUND_INSTANCE,
    KITTI_IMAGE_SIZE,
    KITTI_P2,
    MEAN_DIMENSIONS,
    ROAD_PRESETS,
    SPLITS,
    WORLD_ID,
    RoadConfig,
    RoadObject,
    RoadScene,
    image_intrinsics,
    image_projection,
    image_to_kitti_pixels,
    kitti_to_image_pixels,
    make_road_scene,
    object_primitives,
    road_config,
    sample_road_scene,
)

__all__ = [
    "CAMERA_HEIGHT",
    "CLASS_NAMES",
    "GROUND_INSTANCE",
    "KITTI_IMAGE_SIZE",
    "KITTI_P2",
    "MEAN_DIMENSIONS",
    "ROAD_PRESETS",
    "SPLITS",
    "WORLD_ID",
    "RoadConfig",
    "RoadDataset",
    "RoadFrame",
    "RoadObject",
    "RoadScene",
    "estimated_depth",
    "export_kitti",
    "image_intrinsics",
    "image_projection",
    "image_to_kitti_pixels",
    "kitti_to_image_pixels",
    "make_road_scene",
    "object_primitives",
    "render_road_scenes",
    "road_config",
    "road_frame",
    "road_frames",
    "sample_road_scene",
]
