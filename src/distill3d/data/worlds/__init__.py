"""Built-in procedural 3D worlds (deterministic by seed, offline) and the ray-caster they share.

* :mod:`~distill3d.data.worlds.render`: numba ray-caster over analytic primitives, surface sampling.
* :mod:`~distill3d.data.worlds.shapes`: 16 part-based object categories (Pascal3D+ / ModelNet /
  ShapeNetPart stand-in) with viewpoint and point-cloud datasets.
* :mod:`~distill3d.data.worlds.hands`: 21-joint hands (FreiHAND stand-in), :class:`HandsDataset`.
* :mod:`~distill3d.data.worlds.road`: KITTI-like road scenes, :class:`RoadDataset`, KITTI export.
* :mod:`~distill3d.data.worlds.preview`: contact sheets and dataset exports.
"""

from distill3d.data.worlds.render import (
    PrimitiveKind,
    Primitives,
    RenderOutput,
    SceneBatch,
    primitive_aabb,
    primitive_bounding_radius,
    primitive_sdf,
    render,
    rotation_from_z,
    sample_surface,
)
from distill3d.data.worlds.shapes import (
    CATEGORIES,
    SEEN_CATEGORIES,
    UNSEEN_CATEGORIES,
    ShapesPointCloudDataset,
    ShapesViewpointDataset,
    ShapesWorld,
)

__all__ = [
    "CATEGORIES",
    "SEEN_CATEGORIES",
    "UNSEEN_CATEGORIES",
    "PrimitiveKind",
    "Primitives",
    "RenderOutput",
    "SceneBatch",
    "ShapesPointCloudDataset",
    "ShapesViewpointDataset",
    "ShapesWorld",
    "primitive_aabb",
    "primitive_bounding_radius",
    "primitive_sdf",
    "render",
    "rotation_from_z",
    "sample_surface",
]
