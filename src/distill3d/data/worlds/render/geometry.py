"""Analytic geometry of the primitives (numpy / numba): bounding boxes, signed distances, surface sampling."""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit

from distill3d.data.worlds.render.primitives import (
    _BOX,
    _CAPSULE,
    _CONE,
    _CYLINDER,
    _ELLIPSOID,
    _NONE,
    _PLANE,
    _SPHERE,
    Primitives,
)

# ----------------------------------------------------------------------------------------------
# Analytic geometry (numpy): bounding boxes, signed distances, surface areas, surface sampling.
# ----------------------------------------------------------------------------------------------


def _local_bounds(kind: np.ndarray, rotation: np.ndarray, size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact offsets (P, 3), (P, 3) of the world-axis bounding box from each primitive's centre."""
    axis_z = rotation[:, :, 2]
    across = np.sqrt(np.clip(1.0 - axis_z**2, 0.0, None))
    r, h = size[:, 0:1], size[:, 1:2]
    low, high = np.full((len(kind), 3), -np.inf), np.full((len(kind), 3), np.inf)
    for code in np.unique(kind):
        sel = kind == code
        if code == _SPHERE:
            ext = np.repeat(r[sel], 3, axis=1)
        elif code == _CAPSULE:
            ext = np.abs(axis_z[sel]) * h[sel] + r[sel]
        elif code == _CYLINDER:
            ext = np.abs(axis_z[sel]) * h[sel] + r[sel] * across[sel]
        elif code == _CONE:
            # The hull of the two cap disks, which need not be centred on the primitive's centre.
            half = size[sel, 2:3] * axis_z[sel]
            bottom, top = size[sel, 0:1] * across[sel], size[sel, 1:2] * across[sel]
            low[sel] = np.minimum(-half - bottom, half - top)
            high[sel] = np.maximum(-half + bottom, half + top)
            continue
        elif code == _BOX:
            rounding = size[sel, 3:4]
            ext = np.einsum("pij,pj->pi", np.abs(rotation[sel]), size[sel, :3] - rounding) + rounding
        elif code == _ELLIPSOID:
            ext = np.sqrt(np.einsum("pij,pj->pi", rotation[sel] ** 2, size[sel, :3] ** 2))
        else:
            continue
        low[sel], high[sel] = -ext, ext
    return low, high


def primitive_aabb(prims: Primitives) -> tuple[np.ndarray, np.ndarray]:
    """Exact world axis-aligned bounding box of the primitives: (min (3,), max (3,)); planes ignored."""
    finite = prims.kind != _PLANE
    if not finite.any():
        raise ValueError("primitive_aabb needs at least one bounded primitive")
    low, high = _local_bounds(prims.kind[finite], prims.rotation[finite], prims.size[finite])
    center = prims.center[finite]
    return (center + low).min(axis=0), (center + high).max(axis=0)


def primitive_bounding_radius(kind: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Radius of a sphere about the primitive centre containing it (inf for planes); kind, size (..., 4)."""
    radius = np.full(kind.shape, np.inf)
    radius = np.where(kind == _SPHERE, size[..., 0], radius)
    radius = np.where(kind == _CAPSULE, size[..., 0] + size[..., 1], radius)
    radius = np.where(kind == _CYLINDER, np.hypot(size[..., 0], size[..., 1]), radius)
    cone = np.hypot(np.maximum(size[..., 0], size[..., 1]), size[..., 2])
    radius = np.where(kind == _CONE, cone, radius)
    radius = np.where(kind == _BOX, np.linalg.norm(size[..., :3], axis=-1), radius)
    radius = np.where(kind == _ELLIPSOID, size[..., :3].max(axis=-1), radius)
    return np.where(kind == _NONE, 0.0, radius)


@njit(cache=True, fastmath=False)
def _sdf_scalar(kind, px, py, pz, s0, s1, s2, s3):
    """Signed distance of the local point p to one primitive (negative inside)."""
    if kind == 1:  # sphere
        return math.sqrt(px * px + py * py + pz * pz) - s0
    if kind == 6:  # ellipsoid: exact on the surface, a close under-estimate elsewhere
        k0 = math.sqrt((px / s0) ** 2 + (py / s1) ** 2 + (pz / s2) ** 2)
        k1 = max(math.sqrt((px / s0**2) ** 2 + (py / s1**2) ** 2 + (pz / s2**2) ** 2), 1e-12)
        return k0 * (k0 - 1.0) / k1
    if kind == 2:  # capsule
        z = pz - min(max(pz, -s1), s1)
        return math.sqrt(px * px + py * py + z * z) - s0
    if kind == 3:  # (rounded) box
        qx = abs(px) - (s0 - s3)
        qy = abs(py) - (s1 - s3)
        qz = abs(pz) - (s2 - s3)
        ux = max(qx, 0.0)
        uy = max(qy, 0.0)
        uz = max(qz, 0.0)
        return math.sqrt(ux * ux + uy * uy + uz * uz) + min(max(qx, max(qy, qz)), 0.0) - s3
    if kind == 4:  # capped cylinder
        dr = math.sqrt(px * px + py * py) - s0
        dz = abs(pz) - s1
        ur = max(dr, 0.0)
        uz = max(dz, 0.0)
        return min(max(dr, dz), 0.0) + math.sqrt(ur * ur + uz * uz)
    if kind == 5:  # capped frustum, in the (radial, z) half-plane
        radial = math.sqrt(px * px + py * py)
        h = s2
        cap_radius = s0 if pz < 0.0 else s1
        cap_u = radial - min(radial, cap_radius)
        cap_v = abs(pz) - h
        # Nearest point of the slanted side segment from (r_bottom, -h) to (r_top, h).
        du = s1 - s0
        dv = 2.0 * h
        ru = radial - s0
        rv = pz + h
        along = min(max((ru * du + rv * dv) / (du * du + dv * dv), 0.0), 1.0)
        side_u = ru - du * along
        side_v = rv - dv * along
        dist = math.sqrt(min(cap_u * cap_u + cap_v * cap_v, side_u * side_u + side_v * side_v))
        inside = radial < s0 + du * (pz + h) / dv and abs(pz) < h
        return -dist if inside else dist
    if kind == 7:  # plane z = 0, positive above
        return pz
    return np.inf


@njit(cache=True, fastmath=False)
def _sdf_kernel(points, kind, rotation, center, size, out):
    """out (N, P) = signed distance of world points (N, 3) to every primitive."""
    for n in range(points.shape[0]):
        for p in range(kind.shape[0]):
            rx = points[n, 0] - center[p, 0]
            ry = points[n, 1] - center[p, 1]
            rz = points[n, 2] - center[p, 2]
            m = rotation[p]
            lx = m[0, 0] * rx + m[1, 0] * ry + m[2, 0] * rz
            ly = m[0, 1] * rx + m[1, 1] * ry + m[2, 1] * rz
            lz = m[0, 2] * rx + m[1, 2] * ry + m[2, 2] * rz
            sz = size[p]
            out[n, p] = _sdf_scalar(kind[p], lx, ly, lz, sz[0], sz[1], sz[2], sz[3])


def primitive_sdf(prims: Primitives, points: np.ndarray | torch.Tensor) -> np.ndarray:
    """Signed distance (N, P) from world points (N, 3) to each primitive (negative inside).

    Exact for all kinds except the ellipsoid (exact on its surface, a close estimate off it).
    The distance to the union of the primitives is ``primitive_sdf(...).min(axis=1)``.
    """
    points = np.ascontiguousarray(np.asarray(points, np.float64).reshape(-1, 3))
    out = np.empty((len(points), len(prims)))
    _sdf_kernel(
        points,
        np.ascontiguousarray(prims.kind, np.int64),
        np.ascontiguousarray(prims.rotation, np.float64),
        np.ascontiguousarray(prims.center, np.float64),
        np.ascontiguousarray(prims.size, np.float64),
        out,
    )
    return out


def _ellipsoid_area(semi: np.ndarray) -> np.ndarray:
    """Surface area (N,) of ellipsoids with semi-axes (N, 3) (Knud Thomsen's formula, error < 1.1 %)."""
    p = 1.6075
    a, b, c = (semi[:, i] ** p for i in range(3))
    return 4.0 * np.pi * ((a * b + a * c + b * c) / 3.0) ** (1.0 / p)


def _surface_area(kind: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Surface area (P,) of each primitive in m² (0 for planes and padding)."""
    r, h = size[:, 0], size[:, 1]
    area = np.zeros(len(kind))
    area = np.where(kind == _SPHERE, 4 * np.pi * r**2, area)
    area = np.where(kind == _CAPSULE, 4 * np.pi * r**2 + 4 * np.pi * r * h, area)
    area = np.where(kind == _CYLINDER, 2 * np.pi * r**2 + 4 * np.pi * r * h, area)
    r0, r1, hh = size[:, 0], size[:, 1], size[:, 2]
    cone = np.pi * (r0 + r1) * np.hypot(r1 - r0, 2 * hh) + np.pi * (r0**2 + r1**2)
    area = np.where(kind == _CONE, cone, area)
    rr = size[:, 3]
    inner = size[:, :3] - rr[:, None]
    a, b, c = inner[:, 0], inner[:, 1], inner[:, 2]
    box = 8 * (a * b + b * c + a * c) + 4 * np.pi * rr * (a + b + c) + 4 * np.pi * rr**2
    area = np.where(kind == _BOX, box, area)
    area = np.where(kind == _ELLIPSOID, _ellipsoid_area(np.maximum(size[:, :3], 1e-12)), area)
    return area


@njit(cache=True, fastmath=False)
def _sphere_direction(a, b):
    """Area-uniform unit vector from two uniforms in [0, 1)."""
    z = 2.0 * a - 1.0
    ring = math.sqrt(max(1.0 - z * z, 0.0))
    phi = 2.0 * math.pi * b
    return ring * math.cos(phi), ring * math.sin(phi), z


@njit(cache=True, fastmath=False)
def _sample_one(kind, s0, s1, s2, s3, u):
    """Local point and outward normal on one primitive from 5 uniforms u; ok = False asks for a redraw.

    Every piece of a surface (face, edge, cap, side) is chosen with probability proportional to its area
    and then sampled uniformly, so the result is area-uniform; ellipsoids use rejection on the area
    stretch of the sphere → ellipsoid map.
    """
    px = py = pz = nx = ny = nz = 0.0
    ok = True
    if kind == 1:
        nx, ny, nz = _sphere_direction(u[0], u[1])
        px, py, pz = s0 * nx, s0 * ny, s0 * nz
    elif kind == 6:
        ux, uy, uz = _sphere_direction(u[0], u[1])
        px, py, pz = s0 * ux, s1 * uy, s2 * uz
        stretch = math.sqrt((ux * s1 * s2) ** 2 + (uy * s2 * s0) ** 2 + (uz * s0 * s1) ** 2)
        ok = u[4] * s0 * s1 * s2 / min(s0, min(s1, s2)) <= stretch
        nx, ny, nz = ux / s0, uy / s1, uz / s2
    elif kind == 2 or kind == 4:
        r, h = s0, s1
        side = 4.0 * math.pi * r * h
        ends = 4.0 * math.pi * r * r if kind == 2 else 2.0 * math.pi * r * r
        end = 1.0 if u[3] < 0.5 else -1.0
        if u[0] * (side + ends) < side:
            phi = 2.0 * math.pi * u[1]
            nx, ny = math.cos(phi), math.sin(phi)
            px, py, pz = r * nx, r * ny, (2.0 * u[2] - 1.0) * h
        elif kind == 2:
            nx, ny, nz = _sphere_direction(u[1], u[2])
            nz = abs(nz) * end
            px, py, pz = r * nx, r * ny, r * nz + end * h
        else:
            rho, phi = r * math.sqrt(u[1]), 2.0 * math.pi * u[2]
            px, py, pz = rho * math.cos(phi), rho * math.sin(phi), end * h
            nz = end
    elif kind == 5:
        r0, r1, h = s0, s1, s2
        delta = r1 - r0
        side = math.pi * (r0 + r1) * math.sqrt(delta * delta + 4.0 * h * h)
        bottom = math.pi * r0 * r0
        pick = u[0] * (side + bottom + math.pi * r1 * r1)
        if pick < side:
            # Height fraction with density proportional to the radius (inverse CDF of a linear density).
            linear = abs(delta) < 1e-9
            frac = u[1] if linear else (math.sqrt(r0 * r0 + u[1] * (r1 * r1 - r0 * r0)) - r0) / delta
            radius = r0 + delta * frac
            phi = 2.0 * math.pi * u[2]
            slope = delta / (2.0 * h)
            scale = 1.0 / math.sqrt(1.0 + slope * slope)
            nx, ny, nz = math.cos(phi) * scale, math.sin(phi) * scale, -slope * scale
            px, py, pz = radius * math.cos(phi), radius * math.sin(phi), -h + 2.0 * h * frac
        else:
            end = -1.0 if pick < side + bottom else 1.0
            cap = r0 if end < 0.0 else r1
            rho, phi = cap * math.sqrt(u[1]), 2.0 * math.pi * u[2]
            px, py, pz = rho * math.cos(phi), rho * math.sin(phi), end * h
            nz = end
    elif kind == 3:
        # A rounded box is the inner box swept by a sphere: 6 faces, 12 quarter-cylinder edges and
        # 8 sphere-octant corners (a full circle / sphere split by sign covers all edges / corners).
        rr = s3
        inner = (s0 - rr, s1 - rr, s2 - rr)
        outer = (s0, s1, s2)
        faces = (8.0 * inner[1] * inner[2], 8.0 * inner[0] * inner[2], 8.0 * inner[0] * inner[1])
        edges = (4.0 * math.pi * rr * inner[0], 4.0 * math.pi * rr * inner[1], 4.0 * math.pi * rr * inner[2])
        corners = 4.0 * math.pi * rr * rr
        total = faces[0] + faces[1] + faces[2] + edges[0] + edges[1] + edges[2] + corners
        pick = u[0] * total
        point = [0.0, 0.0, 0.0]
        normal = [0.0, 0.0, 0.0]
        sign = 1.0 if u[3] < 0.5 else -1.0
        chosen = -1
        acc = 0.0
        for i in range(3):
            acc += faces[i]
            if chosen < 0 and pick < acc:
                chosen = i
                point[i] = sign * outer[i]
                normal[i] = sign
                point[(i + 1) % 3] = (2.0 * u[1] - 1.0) * inner[(i + 1) % 3]
                point[(i + 2) % 3] = (2.0 * u[2] - 1.0) * inner[(i + 2) % 3]
        for i in range(3):
            acc += edges[i]
            if chosen < 0 and pick < acc:
                chosen = 3 + i
                phi = 2.0 * math.pi * u[1]
                j, k = (i + 1) % 3, (i + 2) % 3
                normal[j], normal[k] = math.cos(phi), math.sin(phi)
                point[i] = (2.0 * u[2] - 1.0) * inner[i]
                point[j] = math.copysign(inner[j], normal[j]) + rr * normal[j]
                point[k] = math.copysign(inner[k], normal[k]) + rr * normal[k]
        if chosen < 0:
            normal[0], normal[1], normal[2] = _sphere_direction(u[1], u[2])
            for i in range(3):
                point[i] = math.copysign(inner[i], normal[i]) + rr * normal[i]
        px, py, pz = point[0], point[1], point[2]
        nx, ny, nz = normal[0], normal[1], normal[2]
    else:
        ok = False
    return px, py, pz, nx, ny, nz, ok


@njit(cache=True, fastmath=False)
def _sample_kernel(owner, uniforms, kind, rotation, center, size, bound, exterior_tolerance, points, normals, keep):
    """World points/normals for candidate samples; keep = accepted and (optionally) outside other primitives."""
    for n in range(owner.shape[0]):
        o = owner[n]
        sz = size[o]
        px, py, pz, nx, ny, nz, ok = _sample_one(kind[o], sz[0], sz[1], sz[2], sz[3], uniforms[n])
        m = rotation[o]
        wx = m[0, 0] * px + m[0, 1] * py + m[0, 2] * pz + center[o, 0]
        wy = m[1, 0] * px + m[1, 1] * py + m[1, 2] * pz + center[o, 1]
        wz = m[2, 0] * px + m[2, 1] * py + m[2, 2] * pz + center[o, 2]
        gx = m[0, 0] * nx + m[0, 1] * ny + m[0, 2] * nz
        gy = m[1, 0] * nx + m[1, 1] * ny + m[1, 2] * nz
        gz = m[2, 0] * nx + m[2, 1] * ny + m[2, 2] * nz
        norm = math.sqrt(gx * gx + gy * gy + gz * gz)
        points[n, 0], points[n, 1], points[n, 2] = wx, wy, wz
        normals[n, 0], normals[n, 1], normals[n, 2] = gx / norm, gy / norm, gz / norm
        if ok and exterior_tolerance >= 0.0:
            for q in range(kind.shape[0]):
                if q == o:
                    continue
                rx, ry, rz = wx - center[q, 0], wy - center[q, 1], wz - center[q, 2]
                if rx * rx + ry * ry + rz * rz > bound[q] * bound[q]:
                    continue  # outside the bounding sphere, so outside the primitive
                r = rotation[q]
                lx = r[0, 0] * rx + r[1, 0] * ry + r[2, 0] * rz
                ly = r[0, 1] * rx + r[1, 1] * ry + r[2, 1] * rz
                lz = r[0, 2] * rx + r[1, 2] * ry + r[2, 2] * rz
                sq = size[q]
                if _sdf_scalar(kind[q], lx, ly, lz, sq[0], sq[1], sq[2], sq[3]) < -exterior_tolerance:
                    ok = False
                    break
        keep[n] = ok


def sample_surface(
    prims: Primitives,
    n_points: int,
    generator: np.random.Generator,
    exterior_only: bool = True,
    tolerance: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Area-uniform points on the surface of a scene's bounded primitives (planes are skipped).

    Returns points (N, 3) float32 world coordinates, unit outward normals (N, 3) float32 and the
    part id (N,) int64 of the primitive each point lies on.  With ``exterior_only`` points buried
    more than ``tolerance`` inside another primitive are rejected, so the samples are uniform on the
    surface of the union.  Deterministic given the generator's state.
    """
    bounded = (prims.kind != _PLANE) & (prims.kind != _NONE)
    prims = prims.select(bounded)
    if len(prims) == 0:
        raise ValueError("sample_surface needs at least one bounded primitive")
    cumulative = np.cumsum(_surface_area(prims.kind, prims.size))
    kind = np.ascontiguousarray(prims.kind, np.int64)
    rotation = np.ascontiguousarray(prims.rotation, np.float64)
    center = np.ascontiguousarray(prims.center, np.float64)
    size = np.ascontiguousarray(prims.size, np.float64)
    bound = primitive_bounding_radius(prims.kind, prims.size) * 1.0001 + 1e-9
    points, normals, owners = [], [], []
    collected = 0
    for _ in range(50):
        draw = max(2 * (n_points - collected), 64)
        owner = np.minimum(
            np.searchsorted(cumulative, generator.random(draw) * cumulative[-1], side="right"), len(prims) - 1
        )
        uniforms = generator.random((draw, 5))
        world_p, world_n, keep = np.empty((draw, 3)), np.empty((draw, 3)), np.empty(draw, np.bool_)
        tol = float(tolerance) if exterior_only else -1.0
        _sample_kernel(owner, uniforms, kind, rotation, center, size, bound, tol, world_p, world_n, keep)
        points.append(world_p[keep])
        normals.append(world_n[keep])
        owners.append(owner[keep])
        collected += int(keep.sum())
        if collected >= n_points:
            break
    else:
        raise ValueError("sample_surface: the exterior surface is (almost) empty")
    all_o = np.concatenate(owners)
    pick = generator.permutation(len(all_o))[:n_points]
    return (
        torch.from_numpy(np.concatenate(points)[pick].astype(np.float32)),
        torch.from_numpy(np.concatenate(normals)[pick].astype(np.float32)),
        torch.from_numpy(prims.part[all_o[pick]].astype(np.int64)),
    )
