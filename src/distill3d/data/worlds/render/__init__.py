"""A CPU ray-caster over analytic primitives: the rendering core of the procedural worlds.

Why a home-made ray-caster
--------------------------
Measured on the project machine (2 shared CPU cores, no GPU, no system OpenGL), 64×64 images:

* pyrender 0.1.45 and moderngl 5.13 need an OpenGL context (EGL/OSMesa system libraries): they do not
  work headless from PyPI alone.
* open3d 0.20 (Embree ``RaycastingScene``, a 400 MB wheel) fails to import without the system library
  ``libusb-1.0``; it would also need every primitive tessellated and gives no part/instance labels.
* mitsuba 3.9 (62 MB wheel, ``scalar_rgb`` variant, works from PyPI alone): ≈640 images/s for a
  12-shape scene at 1 sample per pixel including scene loading, colour only (depth, normals and ids need
  extra AOV passes).
* this numba kernel: ≈4.2k images/s of shapes-world objects (≈6 primitives) at 1 ray per pixel with
  depth, normals, part and instance ids, ≈1.5k images/s with 2×2 anti-aliasing
  (``benchmarks/world_speed.py``; the numbers vary ±30 % with the load of the shared cores).

So the renderer is a numba kernel (``parallel=True``, ``prange`` over images × pixels, ``cache=True``,
``fastmath=False``): every pixel is computed independently in float64, so results do not depend on
the thread count or on which other scenes share the batch.

Conventions
-----------
* Camera (OpenCV/KITTI): x right, y down, z forward, metres; pixel (u, v) = (column, row) with pixel
  centres at integer coordinates; ``K`` (B, 3, 3); world→camera ``X_cam = R · X_world + t``.
* A primitive lives in its own local frame; ``X_world = rotation · X_local + center``.  Local shape
  parameters (``size``, 4 floats, unused ones 0):

  =========  ==========================================================================
  kind       size
  =========  ==========================================================================
  SPHERE     (radius, -, -, -)
  CAPSULE    (radius, half_length, -, -): segment from z=-half_length to z=+half_length
  BOX        (half_x, half_y, half_z, rounding_radius): rounding ≤ min half extent,
             half extents are the *outer* extents
  CYLINDER   (radius, half_height, -, -): capped, axis local z
  CONE       (radius_bottom at z=-h, radius_top at z=+h, half_height h, -): capped
             frustum; a radius of 0 gives a cone
  ELLIPSOID  (semi_x, semi_y, semi_z, -)
  PLANE      (-, -, -, -): the infinite plane local z = 0 (normal local +z), two-sided
  =========  ==========================================================================

* Outputs: ``depth`` is the z coordinate in the camera frame (metres, *not* the ray length) and is
  **0 where no surface is hit** (KITTI's "invalid" value; use ``mask``).  ``normal`` is the unit
  surface normal in the *camera* frame, flipped to face the camera, 0 on background.  ``part`` /
  ``instance`` / ``primitive`` ids are -1 on background.  ``rgb`` is Lambert + ambient shading
  from one directional light, composited over the caller's background image.  With
  ``samples_per_side = s > 1`` colour and ``coverage`` are averaged over an s×s grid of sub-pixel
  rays (anti-aliasing); depth, normals and ids always come from the ray through the pixel centre.
"""

from __future__ import annotations

from distill3d.data.worlds.render.geometry import (
    primitive_aabb,
    primitive_bounding_radius,
    primitive_sdf,
    sample_surface,
)
from distill3d.data.worlds.render.primitives import PrimitiveKind, Primitives, RenderOutput, SceneBatch, rotation_from_z
from distill3d.data.worlds.render.raycast import render

__all__ = [
    "PrimitiveKind",
    "Primitives",
    "RenderOutput",
    "SceneBatch",
    "primitive_aabb",
    "primitive_bounding_radius",
    "primitive_sdf",
    "render",
    "rotation_from_z",
    "sample_surface",
]
