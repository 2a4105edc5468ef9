"""The numba ray-casting kernel and :func:`render` (see the package docstring for the conventions)."""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit, prange

from distill3d.data.worlds.render.geometry import primitive_bounding_radius
from distill3d.data.worlds.render.primitives import (
    RenderOutput,
    SceneBatch,
)
from distill3d.errors import ShapeError

# ----------------------------------------------------------------------------------------------
# The numba kernel.
# ----------------------------------------------------------------------------------------------

_EPS = 1e-7
_INF = np.inf


@njit(cache=True, fastmath=False, inline="always")
def _hit_sphere(ox, oy, oz, dx, dy, dz, r):
    a = dx * dx + dy * dy + dz * dz
    b = ox * dx + oy * dy + oz * dz
    c = ox * ox + oy * oy + oz * oz - r * r
    disc = b * b - a * c
    if disc < 0.0:
        return _INF
    sq = math.sqrt(disc)
    s = (-b - sq) / a
    if s > _EPS:
        return s
    s = (-b + sq) / a
    if s > _EPS:
        return s
    return _INF


@njit(cache=True, fastmath=False)
def _intersect(kind, ox, oy, oz, dx, dy, dz, s0, s1, s2, s3):
    """First hit (s, nx, ny, nz) of the local ray o + s·d with one primitive; s = inf when missed."""
    best = _INF
    nx = 0.0
    ny = 0.0
    nz = 0.0
    if kind == 1:  # sphere
        s = _hit_sphere(ox, oy, oz, dx, dy, dz, s0)
        if s < best:
            best = s
            nx = ox + s * dx
            ny = oy + s * dy
            nz = oz + s * dz
    elif kind == 6:  # ellipsoid: a unit sphere after scaling the axes
        s = _hit_sphere(ox / s0, oy / s1, oz / s2, dx / s0, dy / s1, dz / s2, 1.0)
        if s < best:
            best = s
            nx = (ox + s * dx) / (s0 * s0)
            ny = (oy + s * dy) / (s1 * s1)
            nz = (oz + s * dz) / (s2 * s2)
    elif kind == 2 or kind == 4:  # capsule, cylinder: side, then end spheres or caps
        r = s0
        h = s1
        a = dx * dx + dy * dy
        if a > 1e-18:
            b = ox * dx + oy * dy
            c = ox * ox + oy * oy - r * r
            disc = b * b - a * c
            if disc >= 0.0:
                sq = math.sqrt(disc)
                for sign in (-1.0, 1.0):
                    s = (-b + sign * sq) / a
                    z = oz + s * dz
                    if s > _EPS and abs(z) <= h and s < best:
                        best = s
                        nx = ox + s * dx
                        ny = oy + s * dy
                        nz = 0.0
                        break
        for end in (-1.0, 1.0):
            if kind == 2:
                s = _hit_sphere(ox, oy, oz - end * h, dx, dy, dz, r)
                if s < best:
                    best = s
                    nx = ox + s * dx
                    ny = oy + s * dy
                    nz = oz + s * dz - end * h
            elif abs(dz) > 1e-18:
                s = (end * h - oz) / dz
                x = ox + s * dx
                y = oy + s * dy
                if s > _EPS and x * x + y * y <= r * r and s < best:
                    best = s
                    nx = 0.0
                    ny = 0.0
                    nz = end
    elif kind == 5:  # capped frustum / cone
        r0 = s0
        r1 = s1
        h = s2
        k = (r1 - r0) / (2.0 * h)
        m = 0.5 * (r0 + r1)
        rz = k * oz + m
        qa = dx * dx + dy * dy - k * k * dz * dz
        qb = ox * dx + oy * dy - k * dz * rz
        qc = ox * ox + oy * oy - rz * rz
        roots = (_INF, _INF)
        if abs(qa) < 1e-14:
            if abs(qb) > 1e-18:
                roots = (-qc / (2.0 * qb), _INF)
        else:
            disc = qb * qb - qa * qc
            if disc >= 0.0:
                sq = math.sqrt(disc)
                ra = (-qb - sq) / qa
                rb = (-qb + sq) / qa
                roots = (min(ra, rb), max(ra, rb))
        for s in roots:
            if s > _EPS and s < best:
                z = oz + s * dz
                if abs(z) <= h and k * z + m >= 0.0:
                    best = s
                    nx = ox + s * dx
                    ny = oy + s * dy
                    nz = -k * (k * z + m)
                    break
        if abs(dz) > 1e-18:
            for end in (-1.0, 1.0):
                cap_r = r1 if end > 0.0 else r0
                s = (end * h - oz) / dz
                x = ox + s * dx
                y = oy + s * dy
                if s > _EPS and s < best and x * x + y * y <= cap_r * cap_r:
                    best = s
                    nx = 0.0
                    ny = 0.0
                    nz = end
    elif kind == 3:  # oriented box, optionally rounded
        t_near = -_INF
        t_far = _INF
        axis = -1
        hit_sign = 0.0
        missed = False
        for i in range(3):
            o = ox if i == 0 else (oy if i == 1 else oz)
            d = dx if i == 0 else (dy if i == 1 else dz)
            half = s0 if i == 0 else (s1 if i == 1 else s2)
            if abs(d) < 1e-18:
                if abs(o) > half:
                    missed = True
                continue
            ta = (-half - o) / d
            tb = (half - o) / d
            if ta > tb:
                ta, tb = tb, ta
            if ta > t_near:
                t_near = ta
                axis = i
                hit_sign = -1.0 if d > 0.0 else 1.0
            if tb < t_far:
                t_far = tb
        if not missed and t_near <= t_far and t_far > _EPS:
            rounding = s3
            if rounding <= 0.0:
                if t_near > _EPS:
                    best = t_near
                    nx = hit_sign if axis == 0 else 0.0
                    ny = hit_sign if axis == 1 else 0.0
                    nz = hit_sign if axis == 2 else 0.0
                else:  # origin inside the box: report the exit
                    best = t_far
                    x = ox + t_far * dx
                    y = oy + t_far * dy
                    z = oz + t_far * dz
                    ex = abs(abs(x) - s0)
                    ey = abs(abs(y) - s1)
                    ez = abs(abs(z) - s2)
                    if ex <= ey and ex <= ez:
                        nx = 1.0 if x > 0 else -1.0
                    elif ey <= ez:
                        ny = 1.0 if y > 0 else -1.0
                    else:
                        nz = 1.0 if z > 0 else -1.0
            else:
                # Sphere-trace the rounded box's distance field inside its bounding slab.
                ix = s0 - rounding
                iy = s1 - rounding
                iz = s2 - rounding
                inv_len = 1.0 / math.sqrt(dx * dx + dy * dy + dz * dz)
                tol = 1e-6 * (s0 + s1 + s2)
                s = max(t_near, _EPS)
                for _ in range(64):
                    qx = abs(ox + s * dx) - ix
                    qy = abs(oy + s * dy) - iy
                    qz = abs(oz + s * dz) - iz
                    ux = max(qx, 0.0)
                    uy = max(qy, 0.0)
                    uz = max(qz, 0.0)
                    dist = math.sqrt(ux * ux + uy * uy + uz * uz) + min(max(qx, max(qy, qz)), 0.0) - rounding
                    if dist < tol:
                        best = s
                        x = ox + s * dx
                        y = oy + s * dy
                        z = oz + s * dz
                        if ux > 0.0 or uy > 0.0 or uz > 0.0:
                            nx = math.copysign(ux, x)
                            ny = math.copysign(uy, y)
                            nz = math.copysign(uz, z)
                        elif qx >= qy and qx >= qz:
                            nx = math.copysign(1.0, x)
                        elif qy >= qz:
                            ny = math.copysign(1.0, y)
                        else:
                            nz = math.copysign(1.0, z)
                        break
                    s += dist * inv_len
                    if s > t_far:
                        break
    elif kind == 7 and abs(dz) > 1e-18:  # infinite plane z = 0
        s = -oz / dz
        if s > _EPS:
            best = s
            nz = 1.0
    return best, nx, ny, nz


@njit(cache=True, fastmath=False)
def _trace(b, dx, dy, dz, count, kind, to_local, origin_local, center_cam, bound, size):
    """Nearest hit of the camera ray (0 + s·d) in image b: (s, primitive index, local normal)."""
    best = _INF
    best_p = -1
    bnx = 0.0
    bny = 0.0
    bnz = 0.0
    dd = dx * dx + dy * dy + dz * dz
    for p in range(count):
        kp = kind[b, p]
        if kp == 0:
            continue
        radius = bound[b, p]
        if radius < _INF:
            cx = center_cam[b, p, 0]
            cy = center_cam[b, p, 1]
            cz = center_cam[b, p, 2]
            along = cx * dx + cy * dy + cz * dz
            miss2 = cx * cx + cy * cy + cz * cz - along * along / dd
            if miss2 > radius * radius:
                continue
            # The primitive's bounding sphere starts beyond the current best hit.
            if along > 0.0 and (along - radius * math.sqrt(dd)) / dd > best:
                continue
        # (Scalar indexing only: slicing views inside the parallel loop costs reference counting.)
        lx = to_local[b, p, 0, 0] * dx + to_local[b, p, 0, 1] * dy + to_local[b, p, 0, 2] * dz
        ly = to_local[b, p, 1, 0] * dx + to_local[b, p, 1, 1] * dy + to_local[b, p, 1, 2] * dz
        lz = to_local[b, p, 2, 0] * dx + to_local[b, p, 2, 1] * dy + to_local[b, p, 2, 2] * dz
        s, nx, ny, nz = _intersect(
            kp,
            origin_local[b, p, 0],
            origin_local[b, p, 1],
            origin_local[b, p, 2],
            lx,
            ly,
            lz,
            size[b, p, 0],
            size[b, p, 1],
            size[b, p, 2],
            size[b, p, 3],
        )
        if s < best:
            best = s
            best_p = p
            bnx = nx
            bny = ny
            bnz = nz
    return best, best_p, bnx, bny, bnz


@njit(cache=True, fastmath=False)
def _camera_normal(b, p, nx, ny, nz, dx, dy, dz, to_camera):
    """Unit camera-frame normal of a local normal, flipped to face the ray."""
    cx = to_camera[b, p, 0, 0] * nx + to_camera[b, p, 0, 1] * ny + to_camera[b, p, 0, 2] * nz
    cy = to_camera[b, p, 1, 0] * nx + to_camera[b, p, 1, 1] * ny + to_camera[b, p, 1, 2] * nz
    cz = to_camera[b, p, 2, 0] * nx + to_camera[b, p, 2, 1] * ny + to_camera[b, p, 2, 2] * nz
    norm = math.sqrt(cx * cx + cy * cy + cz * cz)
    if norm > 0.0:
        cx /= norm
        cy /= norm
        cz /= norm
    if cx * dx + cy * dy + cz * dz > 0.0:
        cx = -cx
        cy = -cy
        cz = -cz
    return cx, cy, cz


@njit(cache=True, fastmath=False, parallel=True)
def _render_kernel(
    inv_k, count, kind, to_local, origin_local, to_camera, center_cam, bound, size, albedo,
    part, instance, light, ambient, background, height, width, samples,
    depth, normal, prim_index, part_map, instance_map, rgb, coverage,
):  # fmt: skip
    batch = inv_k.shape[0]
    pixels = height * width
    for job in prange(batch * pixels):
        b = job // pixels
        pix = job - b * pixels
        v = pix // width
        u = pix - v * width
        n_prim = count[b]
        k00, k01, k02 = inv_k[b, 0, 0], inv_k[b, 0, 1], inv_k[b, 0, 2]
        k10, k11, k12 = inv_k[b, 1, 0], inv_k[b, 1, 1], inv_k[b, 1, 2]
        k20, k21, k22 = inv_k[b, 2, 0], inv_k[b, 2, 1], inv_k[b, 2, 2]
        # Centre ray: depth, normal and ids.
        dx = k00 * u + k01 * v + k02
        dy = k10 * u + k11 * v + k12
        dz = k20 * u + k21 * v + k22
        s, p, nx, ny, nz = _trace(b, dx, dy, dz, n_prim, kind, to_local, origin_local, center_cam, bound, size)
        if p >= 0:
            cx, cy, cz = _camera_normal(b, p, nx, ny, nz, dx, dy, dz, to_camera)
            depth[b, v, u] = s * dz
            normal[b, v, u, 0] = cx
            normal[b, v, u, 1] = cy
            normal[b, v, u, 2] = cz
            prim_index[b, v, u] = p
            part_map[b, v, u] = part[b, p]
            instance_map[b, v, u] = instance[b, p]
        else:
            depth[b, v, u] = 0.0
            normal[b, v, u, 0] = 0.0
            normal[b, v, u, 1] = 0.0
            normal[b, v, u, 2] = 0.0
            prim_index[b, v, u] = -1
            part_map[b, v, u] = -1
            instance_map[b, v, u] = -1
        # Colour: average of an s×s grid of sub-pixel rays (the centre ray when samples == 1).
        r_sum = 0.0
        g_sum = 0.0
        b_sum = 0.0
        hits = 0
        for sy in range(samples):
            for sx in range(samples):
                if samples == 1:
                    hit_p = p
                    hx = dx
                    hy = dy
                    hz = dz
                    lnx = nx
                    lny = ny
                    lnz = nz
                else:
                    uu = u + (sx + 0.5) / samples - 0.5
                    vv = v + (sy + 0.5) / samples - 0.5
                    hx = k00 * uu + k01 * vv + k02
                    hy = k10 * uu + k11 * vv + k12
                    hz = k20 * uu + k21 * vv + k22
                    _, hit_p, lnx, lny, lnz = _trace(
                        b, hx, hy, hz, n_prim, kind, to_local, origin_local, center_cam, bound, size
                    )
                if hit_p < 0:
                    continue
                cx, cy, cz = _camera_normal(b, hit_p, lnx, lny, lnz, hx, hy, hz, to_camera)
                lambert = cx * light[b, 0] + cy * light[b, 1] + cz * light[b, 2]
                shade = ambient[b] + (1.0 - ambient[b]) * max(lambert, 0.0)
                r_sum += albedo[b, hit_p, 0] * shade
                g_sum += albedo[b, hit_p, 1] * shade
                b_sum += albedo[b, hit_p, 2] * shade
                hits += 1
        n_samples = samples * samples
        uncovered = 1.0 - hits / n_samples
        rgb[b, 0, v, u] = min(max(r_sum / n_samples + uncovered * background[b, 0, v, u], 0.0), 1.0)
        rgb[b, 1, v, u] = min(max(g_sum / n_samples + uncovered * background[b, 1, v, u], 0.0), 1.0)
        rgb[b, 2, v, u] = min(max(b_sum / n_samples + uncovered * background[b, 2, v, u], 0.0), 1.0)
        coverage[b, v, u] = hits / n_samples


def _as_array(x: np.ndarray | torch.Tensor, shape_tail: tuple[int, ...], name: str, batch: int) -> np.ndarray:
    array = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    array = np.asarray(array, np.float64)
    if array.shape == shape_tail:
        array = np.broadcast_to(array, (batch, *shape_tail))
    if array.shape != (batch, *shape_tail):
        want = ", ".join(map(str, (batch, *shape_tail)))
        raise ShapeError(f"{name} must have shape ({want}) or ({want.split(', ', 1)[1]}), got {array.shape}")
    return np.ascontiguousarray(array)


def render(
    scene: SceneBatch,
    K: np.ndarray | torch.Tensor,
    R: np.ndarray | torch.Tensor,
    t: np.ndarray | torch.Tensor,
    height: int,
    width: int,
    background: np.ndarray | torch.Tensor | None = None,
    light_direction: np.ndarray | torch.Tensor = (0.3, -0.6, -0.75),
    ambient: float | np.ndarray = 0.35,
    samples_per_side: int = 1,
) -> RenderOutput:
    """Ray-cast a batch of scenes.

    scene: B padded scenes; K (B, 3, 3) intrinsics in pixels; R (B, 3, 3), t (B, 3) world→camera.
    background (B, 3, H, W) or (3, H, W) in [0, 1] (default mid grey); light_direction (B, 3) or (3,)
    vector *towards* the light in the camera frame (normalised here; default: upper right, behind the
    camera; a world-frame sun direction l_w becomes ``R · l_w``); ambient in [0, 1] (scalar or (B,));
    samples_per_side s renders s×s rays per pixel for anti-aliased colour.
    Returns a :class:`RenderOutput` (see there for shapes and units).
    """
    batch = scene.batch_size
    K_ = _as_array(K, (3, 3), "K", batch)
    R_ = _as_array(R, (3, 3), "R", batch)
    t_ = _as_array(t, (3,), "t", batch)
    light = _as_array(light_direction, (3,), "light_direction", batch)
    light = np.ascontiguousarray(light / np.linalg.norm(light, axis=1, keepdims=True))
    ambient_ = np.ascontiguousarray(np.broadcast_to(np.asarray(ambient, np.float64), (batch,)))
    if samples_per_side < 1:
        raise ValueError("samples_per_side must be ≥ 1")

    # Per-primitive transforms: camera direction → local direction, local normal → camera normal,
    # and the camera centre in local coordinates.
    cam_from_local = np.einsum("bij,bpjk->bpik", R_, scene.rotation)
    to_local = np.ascontiguousarray(np.swapaxes(cam_from_local, -1, -2))
    center_cam = np.einsum("bij,bpj->bpi", R_, scene.center) + t_[:, None, :]
    origin_local = np.ascontiguousarray(np.einsum("bpij,bpj->bpi", to_local, -center_cam))
    bound = np.ascontiguousarray(primitive_bounding_radius(scene.kind, scene.size) * 1.0001 + 1e-9)

    if background is None:
        background_ = np.full((batch, 3, height, width), 0.5, np.float32)
    else:
        background_ = _as_array(background, (3, height, width), "background", batch).astype(np.float32)
    # The kernel writes every pixel of every output.
    depth = np.empty((batch, height, width), np.float32)
    normal = np.empty((batch, height, width, 3), np.float32)
    prim_index = np.empty((batch, height, width), np.int64)
    part = np.empty((batch, height, width), np.int64)
    instance = np.empty((batch, height, width), np.int64)
    rgb = np.empty((batch, 3, height, width), np.float32)
    coverage = np.empty((batch, height, width), np.float32)
    _render_kernel(
        np.ascontiguousarray(np.linalg.inv(K_)), scene.count.astype(np.int64),
        np.ascontiguousarray(scene.kind, np.int64), to_local, origin_local,
        np.ascontiguousarray(cam_from_local), np.ascontiguousarray(center_cam), bound,
        np.ascontiguousarray(scene.size, np.float64), np.ascontiguousarray(scene.albedo, np.float64),
        np.ascontiguousarray(scene.part, np.int64), np.ascontiguousarray(scene.instance, np.int64),
        light, ambient_, background_, int(height), int(width), int(samples_per_side),
        depth, normal, prim_index, part, instance, rgb, coverage,
    )  # fmt: skip
    return RenderOutput(
        depth=torch.from_numpy(depth),
        normal=torch.from_numpy(normal),
        part=torch.from_numpy(part),
        instance=torch.from_numpy(instance),
        primitive=torch.from_numpy(prim_index),
        mask=torch.from_numpy(prim_index >= 0),
        coverage=torch.from_numpy(coverage),
        rgb=torch.from_numpy(rgb),
    )
