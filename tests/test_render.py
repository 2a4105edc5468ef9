"""The analytic-primitive ray-caster: silhouettes, depth, normals, ids, compositing, surface sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial import Delaunay

from distill3d.data.worlds.render import (
    PrimitiveKind,
    Primitives,
    SceneBatch,
    primitive_aabb,
    primitive_sdf,
    render,
    rotation_from_z,
    sample_surface,
)
from distill3d.geometry.camera import depth_to_points

SIZE = 48
K = np.array([[60.0, 0.0, 23.5], [0.0, 60.0, 22.0], [0.0, 0.0, 1.0]])


def _prim(kind: int, center, size, rotation=None, part: int = 0, instance: int = 0, albedo=(0.8, 0.4, 0.2)):
    size = list(size) + [0.0] * (4 - len(size))
    return Primitives(
        kind=np.array([kind], np.int32),
        rotation=(np.eye(3) if rotation is None else np.asarray(rotation, float))[None],
        center=np.array([center], float),
        size=np.array([size], float),
        albedo=np.array([albedo], float),
        part=np.array([part]),
        instance=np.array([instance]),
    )


def _camera(batch: int, distance: float = 4.0):
    tilt = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(0.3), -np.sin(0.3)], [0.0, np.sin(0.3), np.cos(0.3)]])
    return np.tile(K, (batch, 1, 1)), np.tile(tilt, (batch, 1, 1)), np.tile([0.1, -0.2, distance], (batch, 1))


TILTED = rotation_from_z(np.array([0.4, 0.8, 0.3]))
ALL_KINDS = [
    _prim(PrimitiveKind.SPHERE, [0.1, 0.0, 0.2], [0.9]),
    _prim(PrimitiveKind.CAPSULE, [0.0, 0.1, 0.0], [0.4, 0.6], TILTED),
    _prim(PrimitiveKind.BOX, [0.0, 0.0, 0.0], [0.7, 0.5, 0.6], TILTED),
    _prim(PrimitiveKind.BOX, [0.0, 0.0, 0.0], [0.7, 0.5, 0.6, 0.2], TILTED),
    _prim(PrimitiveKind.CYLINDER, [0.0, 0.0, 0.1], [0.5, 0.7], TILTED),
    _prim(PrimitiveKind.CONE, [0.0, 0.0, 0.0], [0.8, 0.2, 0.6], TILTED),
    _prim(PrimitiveKind.CONE, [0.0, 0.0, 0.0], [0.0, 0.7, 0.6], TILTED),
    _prim(PrimitiveKind.ELLIPSOID, [0.0, 0.0, 0.0], [0.9, 0.4, 0.6], TILTED),
]


def test_sphere_silhouette_and_depth_match_the_analytic_projection() -> None:
    center, radius = np.array([0.3, -0.2, 0.5]), 0.8
    Kb, R, t = _camera(1)
    out = render(SceneBatch.stack([_prim(PrimitiveKind.SPHERE, center, [radius])]), Kb, R, t, SIZE, SIZE)
    v, u = np.mgrid[0:SIZE, 0:SIZE]
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K).T  # (H, W, 3), z = 1
    c_cam = R[0] @ center + t[0]
    along = rays @ c_cam / (rays**2).sum(-1)
    miss = np.linalg.norm(along[..., None] * rays - c_cam, axis=-1)
    inside = miss < radius - 1e-6
    boundary = np.abs(miss - radius) <= 1e-6
    mask = out.mask[0].numpy()
    assert inside.sum() > 200
    assert np.array_equal(mask[~boundary], inside[~boundary])
    # Near intersection of the ray with the sphere, as camera z.
    dd = (rays**2).sum(-1)
    s_near = along - np.sqrt(np.clip(radius**2 - miss**2, 0, None)) / np.sqrt(dd)
    np.testing.assert_allclose(out.depth[0].numpy()[inside], s_near[inside], atol=1e-5)
    assert (out.depth[0][~out.mask[0]] == 0).all()


def test_box_silhouette_is_the_convex_hull_of_its_projected_corners() -> None:
    half = np.array([0.7, 0.4, 0.5])
    Kb, R, t = _camera(1)
    box = _prim(PrimitiveKind.BOX, [0.1, 0.0, 0.0], half, TILTED)
    out = render(SceneBatch.stack([box]), Kb, R, t, SIZE, SIZE)
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * half
    world = corners @ TILTED.T + [0.1, 0.0, 0.0]
    cam = world @ R[0].T + t[0]
    uv = (cam @ K.T)[:, :2] / cam[:, 2:]
    v, u = np.mgrid[0:SIZE, 0:SIZE]
    inside = Delaunay(uv).find_simplex(np.stack([u.ravel(), v.ravel()], 1)) >= 0
    mismatch = (inside.reshape(SIZE, SIZE) != out.mask[0].numpy()).sum()
    assert out.mask[0].sum() > 200
    assert mismatch <= 2  # only pixel centres lying on the silhouette edge may differ


@pytest.mark.parametrize("index", range(len(ALL_KINDS)))
def test_depth_back_projects_onto_the_analytic_surface(index: int) -> None:
    prims = ALL_KINDS[index]
    Kb, R, t = _camera(1, distance=3.5)
    out = render(SceneBatch.stack([prims]), Kb, R, t, SIZE, SIZE)
    mask = out.mask[0]
    assert mask.sum() > 100
    cam_points = depth_to_points(out.depth.double(), torch.from_numpy(Kb))[0][mask].numpy()
    world = (cam_points - t[0]) @ R[0]
    distance = primitive_sdf(prims, world).min(axis=1)
    assert np.abs(distance).max() < 2e-4
    normals = out.normal[0][mask].numpy()
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
    # Normals face the camera: they point against the viewing ray.
    assert ((normals * cam_points).sum(1) < 1e-6).all()


def test_sphere_normals_are_radial() -> None:
    center = np.array([0.0, 0.2, 0.0])
    Kb, R, t = _camera(1)
    out = render(SceneBatch.stack([_prim(PrimitiveKind.SPHERE, center, [0.9])]), Kb, R, t, SIZE, SIZE)
    mask = out.mask[0]
    points = depth_to_points(out.depth.double(), torch.from_numpy(Kb))[0][mask].numpy()
    expected = (points - (R[0] @ center + t[0])) / 0.9
    np.testing.assert_allclose(out.normal[0][mask].numpy(), expected, atol=1e-4)


def test_ground_plane_depth_and_occlusion_order_of_ids() -> None:
    ground = _prim(PrimitiveKind.PLANE, [0.0, 0.0, -1.0], [], part=5, instance=9)  # world z = -1
    far_box = _prim(PrimitiveKind.BOX, [0.0, 0.0, 0.0], [1.0, 1.0, 0.6], part=1, instance=1)
    near_ball = _prim(PrimitiveKind.SPHERE, [0.0, -1.6, 0.2], [0.35], part=2, instance=2)
    scene = Primitives.concatenate([ground, far_box, near_ball])
    # Camera 5 m in front (world -y) looking along +y, world z up = image up.
    R = np.array([[[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]])
    t = np.array([[0.0, 0.0, 5.0]])
    out = render(SceneBatch.stack([scene]), K[None], R, t, SIZE, SIZE)
    part, instance = out.part[0], out.instance[0]
    assert set(part.unique().tolist()) <= {-1, 1, 2, 5}
    assert {1, 2, 5} <= set(part.unique().tolist())
    assert ((part == -1) == (instance == -1)).all() and ((part == -1) == ~out.mask[0]).all()
    # The ball (nearer) wins where it overlaps the box.
    c = (R[0] @ np.array([0.0, -1.6, 0.2]) + t[0]) @ K.T
    assert part[round(c[1] / c[2]), round(c[0] / c[2])] == 2
    # Ground pixels: world z of the back-projected point is -1.
    ground_pixels = part == 5
    cam = depth_to_points(out.depth.double(), torch.from_numpy(K[None]))[0][ground_pixels].numpy()
    world = (cam - t[0]) @ R[0]
    np.testing.assert_allclose(world[:, 2], -1.0, atol=1e-6)
    # Sky (above the horizon) is background: the top row misses everything.
    assert (part[0] == -1).all()


def test_batch_padding_background_and_determinism() -> None:
    scenes = [ALL_KINDS[0], Primitives.concatenate(ALL_KINDS[2:5]), Primitives.empty()]
    Kb, R, t = _camera(3)
    background = torch.rand(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    batch = render(SceneBatch.stack(scenes), Kb, R, t, SIZE, SIZE, background=background)
    again = render(SceneBatch.stack(scenes), Kb, R, t, SIZE, SIZE, background=background)
    for name in ("depth", "normal", "part", "instance", "rgb"):
        assert torch.equal(getattr(batch, name), getattr(again, name))
    single = render(SceneBatch.stack(scenes[1:2]), Kb[:1], R[:1], t[:1], SIZE, SIZE, background=background[1])
    assert torch.equal(single.rgb[0], batch.rgb[1]) and torch.equal(single.depth[0], batch.depth[1])
    assert not batch.mask[2].any()
    assert torch.equal(batch.rgb[2], background[2])
    off = ~batch.mask[0]
    assert torch.equal(batch.rgb[0].permute(1, 2, 0)[off], background[0].permute(1, 2, 0)[off])
    assert batch.rgb.min() >= 0.0 and batch.rgb.max() <= 1.0


def test_supersampling_keeps_centre_maps_and_softens_edges() -> None:
    Kb, R, t = _camera(1)
    scene = SceneBatch.stack([ALL_KINDS[3]])
    sharp = render(scene, Kb, R, t, SIZE, SIZE)
    smooth = render(scene, Kb, R, t, SIZE, SIZE, samples_per_side=3)
    assert torch.equal(sharp.depth, smooth.depth) and torch.equal(sharp.part, smooth.part)
    partial = (smooth.coverage > 0) & (smooth.coverage < 1)
    assert partial.any()
    assert set(sharp.coverage.unique().tolist()) <= {0.0, 1.0}


def test_lambert_shading_follows_the_light() -> None:
    Kb, R, t = _camera(1)
    scene = SceneBatch.stack([_prim(PrimitiveKind.SPHERE, [0.0, 0.0, 0.0], [1.0], albedo=(1.0, 1.0, 1.0))])
    out = render(scene, Kb, R, t, SIZE, SIZE, light_direction=(1.0, 0.0, 0.0), ambient=0.2)
    mask, normal = out.mask[0], out.normal[0]
    expected = 0.2 + 0.8 * normal[..., 0].clamp(min=0)
    torch.testing.assert_close(out.rgb[0, 0][mask], expected[mask], atol=1e-5, rtol=0)


def test_sample_surface_is_on_the_union_surface_with_unit_normals() -> None:
    scene = Primitives.concatenate(
        [p.select(np.array([True])) for p in ALL_KINDS[1:]] + [_prim(PrimitiveKind.PLANE, [0, 0, -3], [])]
    )
    scene.part[:] = np.arange(len(scene))
    scene.center[:-1] += np.linspace(-2, 2, len(scene) - 1)[:, None] * [1.0, 0.3, 0.0]
    points, normals, parts = sample_surface(scene, 3000, np.random.default_rng(0))
    assert points.shape == (3000, 3) and normals.shape == (3000, 3) and parts.shape == (3000,)
    assert points.dtype == torch.float32 and parts.dtype == torch.int64
    sdf = primitive_sdf(scene, points.double().numpy())[:, :-1]  # the plane is never sampled
    assert np.abs(sdf.min(axis=1)).max() < 1e-5
    np.testing.assert_allclose(normals.norm(dim=1).numpy(), 1.0, atol=1e-5)
    # The normal is the gradient of the union's distance (central differences).
    step = 1e-4
    grads = np.stack(
        [
            (primitive_sdf(scene, points.double().numpy() + step * e)[:, :-1].min(1)
             - primitive_sdf(scene, points.double().numpy() - step * e)[:, :-1].min(1)) / (2 * step)
            for e in np.eye(3)
        ],
        1,
    )  # fmt: skip
    agree = (grads * normals.double().numpy()).sum(1) > 0.99
    assert agree.mean() > 0.97  # creases and edges have no unique gradient
    assert set(parts.unique().tolist()) <= set(range(len(scene) - 1))
    again = sample_surface(scene, 3000, np.random.default_rng(0))
    assert all(torch.equal(a, b) for a, b in zip((points, normals, parts), again, strict=True))


def test_sample_surface_is_area_uniform_and_skips_buried_points() -> None:
    box = _prim(PrimitiveKind.BOX, [0.0, 0.0, 0.0], [1.0, 0.5, 0.25])
    points, _, _ = sample_surface(box, 20000, np.random.default_rng(1))
    on_x = (points[:, 0].abs() > 0.999).float().mean().item()
    on_y = (points[:, 1].abs() > 0.499).float().mean().item()
    on_z = (points[:, 2].abs() > 0.249).float().mean().item()
    total = 0.5 * 0.25 + 1.0 * 0.25 + 1.0 * 0.5  # one face of each pair
    for share, area in ((on_x, 0.5 * 0.25), (on_y, 0.25), (on_z, 0.5)):
        assert abs(share - area / total) < 0.015
    ball = _prim(PrimitiveKind.SPHERE, [1.0, 0.0, 0.0], [0.3], part=1)
    points, _, parts = sample_surface(Primitives.concatenate([box, ball]), 4000, np.random.default_rng(2))
    inside_box = (points.abs() < torch.tensor([1.0, 0.5, 0.25]) - 1e-4).all(1)
    assert not inside_box.any()
    assert ((points - torch.tensor([1.0, 0.0, 0.0])).norm(dim=1)[parts == 0] >= 0.3 - 1e-5).all()


def test_aabb_is_tight() -> None:
    prims = Primitives.concatenate(ALL_KINDS[1:])
    lo, hi = primitive_aabb(prims)
    points, _, _ = sample_surface(prims, 20000, np.random.default_rng(3), exterior_only=False)
    assert (points.numpy() >= lo - 1e-5).all() and (points.numpy() <= hi + 1e-5).all()
    assert np.abs(points.numpy().min(0) - lo).max() < 0.03 and np.abs(points.numpy().max(0) - hi).max() < 0.03
