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
from distill3d.geometry.mono3d import (
    alpha_to_bins,
    bins_to_alpha,
    bottom_centre,
    box_centre,
    decode_detections,
    depth_from_raw,
    dimensions_from_log_ratio,
    gather_at,
    gaussian_radius,
    heatmap_targets,
    lift_centre,
    log_ratio_from_dimensions,
    offset3d_targets,
    project_centre,
    raw_from_depth,
    soft_bins_to_alpha,
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
    "alpha_to_bins",
    "axis_angle_to_rotation_matrix",
    "backproject",
    "bev_iou",
    "bins_to_alpha",
    "bottom_centre",
    "box2d_iou",
    "box3d_corners",
    "box3d_iou",
    "box_centre",
    "canonical_azimuth",
    "crop_and_resize_intrinsics",
    "crop_intrinsics",
    "decode_detections",
    "depth_from_raw",
    "depth_to_points",
    "dimensions_from_log_ratio",
    "extrinsics_to_rotation_translation",
    "flip_viewpoint",
    "gather_at",
    "gaussian_radius",
    "geodesic_distance",
    "heatmap_targets",
    "lift_centre",
    "log_ratio_from_dimensions",
    "look_at",
    "matrix_to_viewpoint",
    "offset3d_targets",
    "point_visibility",
    "project_box3d_to_image",
    "project_centre",
    "project_points",
    "raw_from_depth",
    "resize_intrinsics",
    "rotation_matrix_to_axis_angle",
    "rotation_x",
    "rotation_y",
    "rotation_z",
    "similarity_procrustes",
    "soft_bins_to_alpha",
    "transform_points",
    "viewpoint_to_matrix",
    "viewpoint_to_opencv_rotation",
]
