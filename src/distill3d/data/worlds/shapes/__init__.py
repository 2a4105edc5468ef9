"""The shapes world: 16 procedural object categories built from parametric parts.

It stands in for Pascal3D+/ObjectNet3D (viewpoint estimation from an image), ModelNet40 (point-cloud
classification) and ShapeNetPart (part segmentation).  Everything is generated on the fly and is a
pure function of ``(world, split, index, seed)``: per-sample random streams come from
``numpy.random.default_rng([WORLD_ID, seed, split_id, index, stream])`` (PCG64, the same on every
machine), never from global state.

Canonical object frame (Pascal3D+ / PoseFromShape convention)
------------------------------------------------------------
* z is **up**; the object's **front faces −y** (a chair's seat edge, a car's bonnet and lights, an
  aeroplane's nose, a monitor's display, a guitar's sound hole, a bookshelf's open side, a bed's foot
  end, a lamp's arm); +x is on the viewer's right when the front is seen head-on.  A mug's handle is
  on +x.
* The object is centred on its axis-aligned bounding box (symmetric objects: on their symmetry axis, the
  z axis, so that rotations about z map them onto themselves) and scaled so that the box's farthest corner is
  at distance 1 (every point lies in the unit sphere, as in ModelNet's normalisation).

Viewpoint (Pascal3D+): azimuth a about the up axis, elevation e, in-plane rotation θ, distance d.
The camera centre is ``d·(cos e·sin a, −cos e·cos a, sin e)``: a = 0, e = 0 looks at the front from
the −y side, a = 90° looks at the +x side.  Labels are in **radians** (``viewpoint`` =
(azimuth ∈ [0, 2π), elevation, inplane)); ``numpy.degrees`` gives the degrees Pascal3D+ files store.  The library's
:func:`distill3d.geometry.rotations.viewpoint_to_matrix` gives Pascal3D+'s rotation, whose camera looks
down −z with y up; the OpenCV extrinsics used for rendering are ``R = diag(1, −1, −1)·R_pascal``,
``t = (0, 0, d)`` (see :func:`viewpoint_extrinsics`).  Geodesic errors between two Pascal3D+ rotations
are unchanged by that fixed flip.

Splits ``train`` / ``val`` / ``test`` draw from independent random streams of the same distribution;
category ids are indices into :data:`CATEGORIES` whatever subset a dataset uses.

Speed (2 shared CPU cores, default 64×64, 1 ray/pixel, batches of 256; ``benchmarks/world_speed.py``):
≈550–650 viewpoint samples/s with 1024-point clouds, ≈0.8–1.1k without, ≈1.1k point-cloud
samples/s, ≈200/s with the 12-view rig renders (the shared cores make these vary by ±30 %).  Point
clouds are generated on the fly (several times faster than training consumes them); rendered viewpoint
splits that are reused over epochs are rendered once and cached by the methods
(:class:`distill3d.data.cache.MaterializedDataset`; see ``benchmarks/results/world_speed.md``).
Datasets implement ``__getitems__``, so a DataLoader worker renders a whole batch in one call.
"""

from distill3d.data.worlds.shapes.categories import (
    CATEGORIES,
    CATEGORY_INFO,
    PART_NAMES,
    SEEN_CATEGORIES,
    SPLITS,
    UNSEEN_CATEGORIES,
    WORLD_ID,
    CategoryInfo,
    ShapeObject,
    build_object,
    category_part_ids,
)
from distill3d.data.worlds.shapes.datasets import ShapesPointCloudDataset, ShapesViewpointDataset
from distill3d.data.worlds.shapes.world import (
    SHAPES_PRESETS,
    ShapesPreset,
    ShapesWorld,
    intrinsics,
    multiview_rig,
    procedural_backgrounds,
    render_viewpoints,
    viewpoint_extrinsics,
)

__all__ = [
    "CATEGORIES",
    "CATEGORY_INFO",
    "PART_NAMES",
    "SEEN_CATEGORIES",
    "SHAPES_PRESETS",
    "SPLITS",
    "UNSEEN_CATEGORIES",
    "WORLD_ID",
    "CategoryInfo",
    "ShapeObject",
    "ShapesPointCloudDataset",
    "ShapesPreset",
    "ShapesViewpointDataset",
    "ShapesWorld",
    "build_object",
    "category_part_ids",
    "intrinsics",
    "multiview_rig",
    "procedural_backgrounds",
    "render_viewpoints",
    "viewpoint_extrinsics",
]
