"""Pure, batched torch geometry for 3D vision.

Conventions for the whole library: OpenCV/KITTI camera coordinates (x right, y down, z forward, metres);
pixel ``(u, v)`` with u the column and v the row, pixel centres at integer coordinates; intrinsics K
(..., 3, 3); world→camera extrinsics ``X_cam = R·X_world + t`` as (R (..., 3, 3), t (..., 3)) or a 4×4;
angles in radians unless a name ends in ``_deg``.
"""

from distill3d.geometry.boxes3d import bev_iou, box2d_iou, box3d_corners, box3d_iou, project_box3d_to_image
from distill3d.geometry.camera import (
    backproject,
    crop_and_resize_intrinsics,
    crop_intrinsics,
    depth_to_points,
    extrinsics_to_rotation_translation,
    look_at,
    project_points,
    resize_intrinsics,
    transform_points,
)
from distill3d.geometry.procrustes import FREIHAND_NORM_EPSILON, align_similarity, similarity_procrustes
from distill3d.geometry.rotations import (
    axis_angle_to_rotation_matrix,
    canonical_azimuth,
    geodesic_distance,
    matrix_to_viewpoint,
    rotation_matrix_to_axis_angle,
    rotation_x,
    rotation_y,
    rotation_z,
    viewpoint_to_matrix,
    viewpoint_to_opencv_rotation,
)
from distill3d.geometry.viewpoint_bins import ViewpointBins, flip_viewpoint
from distill3d.geometry.visibility import point_visibility

__all__ = [
    "FREIHAND_NORM_EPSILON",
    "ViewpointBins",
    "align_similarity",
    "axis_angle_to_rotation_matrix",
    "backproject",
    "bev_iou",
    "box2d_iou",
    "box3d_corners",
    "box3d_iou",
    "canonical_azimuth",
    "crop_and_resize_intrinsics",
    "crop_intrinsics",
    "depth_to_points",
    "extrinsics_to_rotation_translation",
    "flip_viewpoint",
    "geodesic_distance",
    "look_at",
    "matrix_to_viewpoint",
    "point_visibility",
    "project_box3d_to_image",
    "project_points",
    "resize_intrinsics",
    "rotation_matrix_to_axis_angle",
    "rotation_x",
    "rotation_y",
    "rotation_z",
    "similarity_procrustes",
    "transform_points",
    "viewpoint_to_matrix",
    "viewpoint_to_opencv_rotation",
]
