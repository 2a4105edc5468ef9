"""The shapes world: determinism, labels consistent with renders, point clouds, splits, conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from distill3d.data.worlds.render import primitive_sdf
from distill3d.data.worlds.shapes import (
    CATEGORIES,
    CATEGORY_INFO,
    PART_NAMES,
    SEEN_CATEGORIES,
    UNSEEN_CATEGORIES,
    ShapesPointCloudDataset,
    ShapesViewpointDataset,
    ShapesWorld,
    build_object,
    category_part_ids,
    intrinsics,
    multiview_rig,
    procedural_backgrounds,
    render_viewpoints,
    viewpoint_extrinsics,
)
from distill3d.geometry.camera import depth_to_points, project_points
from distill3d.geometry.rotations import viewpoint_to_matrix

SIZE = 48


def test_same_split_index_seed_gives_identical_samples_regardless_of_batch() -> None:
    world = ShapesWorld(image_size=SIZE, n_points=256)
    first = world.viewpoint_batch("train", [5, 9])
    again = world.viewpoint_batch("train", [9, 5])
    for key, value in first.items():
        assert torch.equal(value[0], again[key][1]), key
        assert torch.equal(value[1], again[key][0]), key
    other_index = world.viewpoint_batch("train", [6])
    assert not torch.equal(first["image"][0], other_index["image"][0])
    other_split = world.viewpoint_batch("val", [5])
    other_seed = ShapesWorld(image_size=SIZE, n_points=256, seed=1).viewpoint_batch("train", [5])
    for different in (other_split, other_seed):
        assert not torch.equal(first["points"][0], different["points"][0])
        assert not torch.equal(first["viewpoint"][0], different["viewpoint"][0])


def test_viewpoint_dataset_items_have_documented_shapes_and_batch_through_a_dataloader() -> None:
    data = ShapesViewpointDataset("train", length=8, image_size=SIZE, n_points=128)
    item = data[3]
    expected = {
        "image": ((3, SIZE, SIZE), torch.float32),
        "viewpoint": ((3,), torch.float32),
        "category": ((), torch.int64),
        "symmetry_order": ((), torch.int64),
        "distance": ((), torch.float32),
        "K": ((3, 3), torch.float32),
        "R": ((3, 3), torch.float32),
        "t": ((3,), torch.float32),
        "depth": ((SIZE, SIZE), torch.float32),
        "mask": ((SIZE, SIZE), torch.bool),
        "part_map": ((SIZE, SIZE), torch.int64),
        "points": ((128, 3), torch.float32),
        "normals": ((128, 3), torch.float32),
        "part_labels": ((128,), torch.int64),
    }
    assert set(item) == set(expected)
    for key, (shape, dtype) in expected.items():
        assert tuple(item[key].shape) == shape and item[key].dtype == dtype, key
    assert item["image"].min() >= 0.0 and item["image"].max() <= 1.0
    azimuth, elevation, inplane = item["viewpoint"].tolist()
    assert 0.0 <= azimuth < 2 * math.pi and abs(elevation) <= math.pi / 4 + 1e-6 and abs(inplane) <= 0.35
    batch = next(iter(DataLoader(data, batch_size=4)))
    assert batch["image"].shape == (4, 3, SIZE, SIZE)
    assert torch.equal(batch["image"][3], item["image"])
    with pytest.raises(IndexError):
        data[8]


def test_canonical_points_projected_with_the_viewpoint_label_fall_inside_the_mask() -> None:
    world = ShapesWorld(image_size=SIZE, n_points=512)
    batch = world.viewpoint_batch("test", range(len(CATEGORIES)))
    # Rebuild the camera from the label alone: Pascal3D+ rotation → OpenCV, t = (0, 0, distance).
    pascal = viewpoint_to_matrix(*batch["viewpoint"].double().unbind(1))
    R = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64)) @ pascal
    torch.testing.assert_close(R.float(), batch["R"], atol=1e-5, rtol=0)
    cam = (
        batch["points"].double() @ R.transpose(1, 2)
        + torch.stack(
            [torch.zeros_like(batch["distance"]), torch.zeros_like(batch["distance"]), batch["distance"]], 1
        ).double()[:, None]
    )
    uv, depth = project_points(cam, batch["K"].double())
    assert (depth > 0).all()
    cols, rows = uv[..., 0].round().long(), uv[..., 1].round().long()
    inside_image = (cols >= 0) & (cols < SIZE) & (rows >= 0) & (rows < SIZE)
    # Parts thinner than a pixel (legs, necks) are missed by pixel-centre rays: allow one pixel.
    near_mask = torch.nn.functional.max_pool2d(batch["mask"].float()[:, None], 3, 1, 1)[:, 0] > 0
    hits = torch.zeros_like(inside_image)
    for b in range(len(CATEGORIES)):
        ok = inside_image[b]
        hits[b, ok] = near_mask[b, rows[b, ok], cols[b, ok]]
    assert hits.float().mean(1).min() >= 0.95
    # A wrong convention (e.g. the Pascal3D+ rotation used as an OpenCV one) fails clearly.
    wrong_uv, _ = project_points(
        cam @ torch.diag(torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)), batch["K"].double()
    )
    wrong_rows = wrong_uv[..., 1].round().long().clamp(0, SIZE - 1)
    wrong_hits = near_mask[torch.arange(len(CATEGORIES))[:, None], wrong_rows, cols.clamp(0, SIZE - 1)]
    assert wrong_hits.float().mean() < 0.85


def test_depth_back_projects_onto_the_object_surface() -> None:
    world = ShapesWorld(image_size=SIZE, n_points=64)
    indices = [0, 5, 6, 10]
    batch = world.viewpoint_batch("train", indices)
    cam = depth_to_points(batch["depth"].double(), batch["K"].double())
    for row, index in enumerate(indices):
        mask = batch["mask"][row]
        assert mask.sum() > 30
        points = (cam[row][mask] - batch["t"][row].double()) @ batch["R"][row].double()
        distance = primitive_sdf(world.object("train", index).primitives, points.numpy()).min(axis=1)
        assert np.abs(distance).max() < 1e-4
        assert (batch["depth"][row][~mask] == 0).all()


def test_point_clouds_lie_on_the_surface_with_unit_normals_and_category_parts() -> None:
    world = ShapesWorld(n_points=512)
    for index, category in enumerate(CATEGORIES):
        obj = world.object("train", index)
        assert obj.category == category
        cloud = world.point_cloud("train", index, obj)
        sdf = primitive_sdf(obj.primitives, cloud["points"].double().numpy()).min(axis=1)
        assert np.abs(sdf).max() < 1e-5, category
        torch.testing.assert_close(cloud["normals"].norm(dim=1), torch.ones(512), atol=1e-5, rtol=0)
        assert cloud["points"].norm(dim=1).max() <= 1.0 + 1e-5
        assert set(cloud["part_labels"].tolist()) <= set(category_part_ids(category))
        assert len(set(cloud["part_labels"].tolist())) >= 2, category


def test_part_table_and_category_splits() -> None:
    assert len(CATEGORIES) >= 16
    all_ids = [i for c in CATEGORIES for i in category_part_ids(c)]
    assert all_ids == list(range(len(PART_NAMES)))
    assert all(PART_NAMES[i].startswith(c + "/") for c in CATEGORIES for i in category_part_ids(c))
    assert not set(SEEN_CATEGORIES) & set(UNSEEN_CATEGORIES)
    assert set(SEEN_CATEGORIES) | set(UNSEEN_CATEGORIES) == set(CATEGORIES)
    unseen = ShapesPointCloudDataset("test", length=8, categories="unseen", n_points=64).batch(range(8))
    assert {CATEGORIES[i] for i in unseen["category"].tolist()} == set(UNSEEN_CATEGORIES)


def test_symmetric_categories_are_flagged() -> None:
    assert {c for c in CATEGORIES if CATEGORY_INFO[c].symmetry == "continuous"} == {"bottle", "cup"}
    for category in ("bottle", "cup"):
        assert build_object(category, np.random.default_rng(0)).symmetry_order == 0
    for category in ("car", "chair", "mug", "monitor", "airplane"):
        assert build_object(category, np.random.default_rng(0)).symmetry_order == 1
    for seed in range(4):
        rocket = build_object("rocket", np.random.default_rng(seed))
        fins = int((rocket.primitives.part == category_part_ids("rocket")[2]).sum())
        assert rocket.symmetry_order == fins


def _render_canonical(category: str, azimuth_deg: float, elevation_deg: float = 0.0):
    obj = build_object(category, np.random.default_rng(3))
    viewpoint = np.radians([[azimuth_deg, elevation_deg, 0.0]])
    out, _ = render_viewpoints([obj], viewpoint, distance=3.0, image_size=SIZE, focal_factor=1.0)
    return obj, out


def test_azimuth_zero_shows_the_front_upright_with_plus_x_on_the_right() -> None:
    display = category_part_ids("monitor")[0]
    _, front = _render_canonical("monitor", 0.0)
    _, back = _render_canonical("monitor", 180.0)
    assert (front.part == display).sum() > 50 and (back.part == display).sum() == 0
    lights = category_part_ids("car")[3]
    _, front = _render_canonical("car", 0.0, 10.0)
    _, back = _render_canonical("car", 180.0, 10.0)
    assert (front.part == lights).sum() > 0 and (back.part == lights).sum() == 0
    # Upright: the lamp's shade (top) is above its base; the mug's handle (+x) is on the right.
    lamp_base, _, lamp_shade = category_part_ids("lamp")
    _, lamp = _render_canonical("lamp", 0.0)
    rows = torch.arange(SIZE)[:, None].expand(SIZE, SIZE)
    assert rows[lamp.part[0] == lamp_shade].float().mean() < rows[lamp.part[0] == lamp_base].float().mean()
    body, handle = category_part_ids("mug")
    _, mug = _render_canonical("mug", 0.0)
    cols = torch.arange(SIZE)[None, :].expand(SIZE, SIZE)
    assert cols[mug.part[0] == handle].float().mean() > cols[mug.part[0] == body].float().mean()
    _, mug_side = _render_canonical("mug", 90.0)  # the camera on +x sees the handle head-on
    _, mug_other = _render_canonical("mug", 270.0)
    assert (mug_side.part == handle).sum() > (mug_other.part == handle).sum()


def test_multiview_rig_and_point_cloud_dataset_with_views() -> None:
    K, R, t, viewpoints = multiview_rig(SIZE)
    assert K.shape == (12, 3, 3) and R.shape == (12, 3, 3) and t.shape == (12, 3)
    np.testing.assert_allclose(np.degrees(viewpoints[:, 0]), np.arange(12) * 30.0, atol=1e-9)
    np.testing.assert_allclose(np.degrees(viewpoints[:, 1]), 30.0)
    centres = -np.einsum("vji,vj->vi", R, t)  # camera centres in the object frame
    np.testing.assert_allclose(np.degrees(np.arcsin(centres[:, 2] / np.linalg.norm(centres, axis=1))), 30.0)
    data = ShapesPointCloudDataset("train", length=4, n_points=128, with_views=True, image_size=SIZE)
    items = data.__getitems__([0, 1])
    assert items[0]["views"].shape == (12, 3, SIZE, SIZE) and items[0]["view_K"].shape == (12, 3, 3)
    assert items[0]["view_mask"].flatten(1).any(1).all()
    assert torch.equal(items[1]["points"], data[1]["points"])


def test_backgrounds_are_deterministic_and_varied() -> None:
    rngs = [np.random.default_rng([1, i]) for i in range(8)]
    images = procedural_backgrounds(rngs, SIZE, SIZE)
    again = procedural_backgrounds([np.random.default_rng([1, i]) for i in range(8)], SIZE, SIZE)
    assert images.shape == (8, 3, SIZE, SIZE) and np.array_equal(images, again)
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert len({float(im.std()) for im in images}) == 8


def test_positive_inplane_rotation_turns_the_image_counter_clockwise() -> None:
    # The object's top (0, 0, 1) seen from the front: above the centre at θ = 0, moved to the left
    # (smaller u) for θ > 0, as in Pascal3D+ (2D rotation by θ in a y-up image frame).
    K = torch.from_numpy(intrinsics(SIZE, (SIZE - 1) / 2, (SIZE - 1) / 2))
    uv = []
    for inplane in (0.0, 0.3):
        R, t = viewpoint_extrinsics(0.0, 0.0, inplane, 3.0)
        cam = torch.from_numpy(R[0] @ np.array([0.0, 0.0, 1.0]) + t[0])[None, None]
        uv.append(project_points(cam, K)[0][0, 0])
    centre = (SIZE - 1) / 2
    assert abs(uv[0][0] - centre) < 1e-9 and uv[0][1] < centre
    assert uv[1][0] < centre and uv[1][1] < centre


def test_dataloader_workers_can_fork_after_the_parent_rendered() -> None:
    data = ShapesViewpointDataset("val", length=4, image_size=16, n_points=16)
    expected = data.batch([0, 1, 2, 3])["image"]  # the parent runs the parallel kernel first
    batch = next(iter(DataLoader(data, batch_size=4, num_workers=1)))
    assert torch.equal(batch["image"], expected)


# ------------------------------------------------------------------------------------- difficulty presets
def test_difficulty_presets_change_the_scene_but_not_the_labels_semantics() -> None:
    batches = {d: ShapesWorld(SIZE, 64, "seen", difficulty=d).viewpoint_batch("val", list(range(12)), False)
               for d in ("easy", "standard", "hard")}
    # easy: flat light-grey background everywhere off the object, nothing else in the frame
    easy = batches["easy"]
    off_object = ~easy["mask"][:, None].expand_as(easy["image"])
    assert torch.allclose(easy["image"][off_object], torch.full((), 0.92), atol=1e-6)
    # standard backgrounds vary less than hard ones (a third of the contrast, no stripes)
    def background_spread(batch: dict[str, torch.Tensor]) -> float:
        stds = [batch["image"][i][:, ~batch["mask"][i]].std(dim=1).mean() for i in range(len(batch["image"]))]
        return float(torch.stack(stds).mean())
    assert background_spread(batches["standard"]) < 0.6 * background_spread(batches["hard"])
    # objects are larger in the frame on average in standard than in hard
    assert batches["standard"]["mask"].float().mean() > batches["hard"]["mask"].float().mean()
    with pytest.raises(ValueError, match="difficulty"):
        ShapesWorld(difficulty="medium")


def test_hard_preset_reproduces_the_original_world() -> None:
    """``hard`` keeps the original random streams: the same sample renders as it did before the presets."""
    hard = ShapesWorld(SIZE, 64, difficulty="hard")
    rng = np.random.default_rng([1, 0, 0, 3, 0])  # WORLD_ID, seed, split train, index 3, object stream
    original = build_object(hard.category_of(3), rng)
    again = hard.object("train", 3)
    assert np.array_equal(original.primitives.size, again.primitives.size)


@pytest.mark.parametrize("difficulty", ["easy", "standard", "hard"])
def test_symmetric_objects_get_canonical_azimuths_that_render_identically(difficulty: str) -> None:
    """An n-fold symmetric object looks the same from a and a + 2π/n (so the label is a mod 2π/n); an object of
    revolution looks the same from every azimuth (label 0). The world's labels are canonical and its images are
    the renders at those labels."""
    world = ShapesWorld(SIZE, 64, ("bottle", "cup", "table", "stool", "rocket", "bench"), difficulty=difficulty)
    indices = list(range(36))
    batch = world.viewpoint_batch("test", indices, with_points=False)
    orders = batch["symmetry_order"]
    assert set(orders.tolist()) >= {0, 2}
    period = 2 * math.pi / orders.clamp(min=1).float()
    azimuth = batch["viewpoint"][:, 0]
    assert torch.all(azimuth[orders == 0] == 0)
    assert torch.all((azimuth >= 0) & (azimuth < period + 1e-6))
    objects = [world.object("test", i) for i in indices]
    for turns in (1, 2):
        turned = batch["viewpoint"].double().clone()
        turned[:, 0] += torch.where(orders == 0, 1.234, turns * period.double())
        masks = render_viewpoints(objects, turned.numpy(), batch["distance"].numpy(), SIZE)[0].mask
        reference = render_viewpoints(objects, batch["viewpoint"].double().numpy(), batch["distance"].numpy(),
                                      SIZE)[0].mask
        symmetric = orders != 1
        iou = (masks & reference).sum((1, 2)).float() / (masks | reference).sum((1, 2)).clamp(min=1).float()
        assert iou[symmetric].min() > 0.97, iou[symmetric]


def test_readable_fronts_make_front_and_back_views_differ() -> None:
    """Cars, lamps and benches seen from the front and from behind differ more in the standard preset."""
    def front_back_difference(readable: bool) -> float:
        total = 0.0
        for category in ("car", "lamp", "bench"):
            objects = [build_object(category, np.random.default_rng([5, i]), readable) for i in range(8)]
            views = np.array([[0.3, 0.4, 0.0]] * 8)
            behind = views + np.array([math.pi, 0, 0])
            front = render_viewpoints(objects, views)[0].rgb
            back = render_viewpoints(objects, behind)[0].rgb.flip(3)
            total += float((front - back).abs().mean())
        return total
    assert front_back_difference(True) > front_back_difference(False)


def front_back_over_turn(category: str, readable: bool) -> float:
    """Median over 8 instances of |I(a) − I(a + π)| / |I(a) − I(a + 30°)| (mean absolute pixel differences of
    64 px renders): below 1 the object seen from behind looks more like itself than a 30° turn does."""
    objects = [build_object(category, np.random.default_rng([7, i]), readable) for i in range(8)]
    views = np.stack([np.random.default_rng(1).random(8) * 2 * math.pi, np.full(8, 0.17), np.zeros(8)], 1)

    def render_turned(turn: float) -> torch.Tensor:
        return render_viewpoints(objects, views + np.array([turn, 0.0, 0.0]), 2.7)[0].rgb

    reference = render_turned(0.0)
    behind = (render_turned(math.pi) - reference).abs().mean((1, 2, 3))
    turned = (render_turned(math.pi / 6) - reference).abs().mean((1, 2, 3))
    return float((behind / turned).median())


def test_readable_guitars_look_different_from_behind() -> None:
    """Without its readable front (``hard``) a guitar seen from behind differs from its front view only by a 2–3 px
    sound hole, less than half of what a 30° turn changes; the readable presets give it a light top, a larger hole, a
    bridge and a dark fretboard, so that its back differs from its front more than a 30° turn does."""
    assert front_back_over_turn("guitar", readable=True) > 1.0
    assert front_back_over_turn("guitar", readable=False) < 0.5


def fin_phases(readable: bool) -> tuple[np.ndarray, np.ndarray]:
    """exp(i·n·θ) of every rocket fin's centre azimuth θ — the phase modulo the symmetry period 2π/n, on the unit
    circle so that no wrap-around matters — and n, the rocket's fin count, for 12 instances."""
    fin_part = category_part_ids("rocket")[CATEGORY_INFO["rocket"].parts.index("fin")]
    phases, orders = [], []
    for i in range(12):
        rocket = build_object("rocket", np.random.default_rng([7, i]), readable)
        centers = rocket.primitives.center[rocket.primitives.part == fin_part]
        assert len(centers) == rocket.symmetry_order
        phases.append(np.exp(1j * rocket.symmetry_order * np.arctan2(centers[:, 1], centers[:, 0])))
        orders.append(np.full(len(centers), rocket.symmetry_order))
    return np.concatenate(phases), np.concatenate(orders)


def test_readable_rockets_have_a_fin_at_the_front_so_their_label_is_readable() -> None:
    """A rocket's canonical azimuth is a mod 2π/n; it can be read from an image only if the fins sit at the same
    canonical angles on every instance: in the readable presets one fin points to the front (−y, as a stool's first
    leg), so n·θ ≡ −n·π/2 for every fin; ``hard`` keeps the original random phase."""
    phases, orders = fin_phases(True)
    assert set(orders.tolist()) == {3, 4}
    np.testing.assert_allclose(phases, np.exp(-1j * orders * np.pi / 2), atol=1e-9)
    phases, _ = fin_phases(False)
    assert np.abs(phases.mean()) < 0.9  # spread over the circle
