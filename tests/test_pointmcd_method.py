"""PointMCD method: options, rig / visibility / renders, the teacher-knowledge cache, tiny runs of both stages."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from distill3d.data.worlds.shapes import ShapesWorld
from distill3d.engine.checkpoint import load_checkpoint, save_checkpoint
from distill3d.engine.config import TrainConfig, validate_section
from distill3d.engine.task import Task
from distill3d.engine.trainer import Trainer
from distill3d.errors import ConfigError
from distill3d.methods.pointmcd import Options, build_task, prepare_knowledge
from distill3d.methods.pointmcd.data import (
    build_rig,
    labelled_mask,
    point_source,
    render_shape_views,
    rig_visibility,
    splat_render,
)
from distill3d.methods.pointmcd.task import linear_svm_accuracy

TINY = dict(categories=["chair", "table"], train_size=16, val_size=8, test_size=8, num_points=128, views=4,
            image_size=32, backbone_width=8, descriptor_dim=64, dgcnn_k=16)


def tiny_options(cache_dir: Path, **changes) -> Options:
    return Options(**{**TINY, "cache_dir": cache_dir, **changes})


def fit(options: Options, run_dir: Path, monitor: str) -> tuple[dict[str, float], object]:
    task = build_task(options, seed=0)
    config = TrainConfig(epochs=1, batch_size=8, monitor=monitor, log_every=1)
    result = Trainer(config, run_dir, seed=0, progress=False,
                     config_dump={"method": "pointmcd", "options": options.model_dump(mode="json")}).fit(task)
    assert all(math.isfinite(v) for v in result.step_losses)
    return result.last_metrics, task


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny teacher trained through the engine: (run folder, cache folder)."""
    root = tmp_path_factory.mktemp("pointmcd")
    cache = root / "cache"
    metrics, _ = fit(tiny_options(cache, stage="teacher"), root / "teacher", "val/oa")
    assert 0 <= metrics["oa"] <= 100 and 0 <= metrics["macc"] <= 100
    return root / "teacher", cache


# ------------------------------------------------------------------------------------------------ options
@pytest.mark.parametrize(("data", "key"), [
    ({"stage": "teacher", "bogus": 1}, "options.bogus"),
    ({"views": 0}, "options.views"),
    ({"categories": ["chair", "spaceship"]}, "options.categories"),
    ({"stage": "student"}, "options.teacher_checkpoint"),
    ({"views": 5, "view_elevations_deg": [30.0, -20.0]}, "options.views"),
    ({"dataset": "modelnet40"}, "options.data_root"),
])
def test_options_errors_name_the_key(data: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_section(Options, data, "options")


def test_default_options_build_both_stages() -> None:
    assert build_task(Options(), 0).build_model() is not None
    student = Options(stage="student", distillation_weight=0.0)
    assert student.effective_smoothing == 0.2
    assert Options(task="segmentation").effective_smoothing == 0.05
    # the official scripts' task weights beside λ = 1 (METHODS.md §4.3), unless set
    assert student.effective_task_weight == 0.1
    assert Options(task="segmentation").effective_task_weight == 0.1
    assert Options(task="segmentation", student="dgcnn").effective_task_weight == 1.0
    assert Options(task_weight=0.3).effective_task_weight == 0.3
    with pytest.raises(ValueError, match="nothing to train"):
        Options(stage="student", distillation_weight=0.0, task_weight=0.0)
    assert build_task(student, 0).build_model().projection is None


# ------------------------------------------------------------------------------------ rig and visibility
def test_rig_has_one_ring_per_elevation() -> None:
    rig = build_rig(8, [30.0, -20.0], 32)
    assert rig.views == 8 and rig.R.shape == (8, 3, 3) and rig.t.shape == (8, 3)
    centres = -(rig.R.transpose(1, 2) @ rig.t.unsqueeze(-1)).squeeze(-1)  # camera centres, object frame
    torch.testing.assert_close(centres.norm(dim=1), torch.full((8,), 3.0))
    elevation = torch.rad2deg(torch.asin(centres[:, 2] / 3.0))
    torch.testing.assert_close(elevation, torch.tensor([30.0] * 4 + [-20.0] * 4), atol=1e-4, rtol=0)


def test_point_visibility_sees_the_near_hemisphere_of_a_sphere() -> None:
    """Splat renders + point z-buffer (real-data path): a point facing a camera is seen by it, one facing away is
    not (away from the rim)."""
    generator = torch.Generator().manual_seed(0)
    normals = torch.nn.functional.normalize(torch.randn(1, 4000, 3, generator=generator), dim=-1)
    points = 0.8 * normals
    rig = build_rig(4, [30.0], 48)
    visible = rig_visibility(points, rig, tolerance=0.1, splat_radius=1)[0]  # (N, V)
    assert visible.shape == (4000, 4)
    centres = -(rig.R.transpose(1, 2) @ rig.t.unsqueeze(-1)).squeeze(-1)  # (V, 3)
    facing = torch.einsum("nc,vnc->nv", normals[0], torch.nn.functional.normalize(centres[:, None] - points, dim=-1))
    assert visible[facing > 0.6].float().mean() > 0.9
    assert visible[facing < -0.3].float().mean() < 0.05
    images, depth = splat_render(points, normals, rig, 1)
    assert images.shape == (1, 4, 3, 48, 48) and depth.shape == (1, 4, 48, 48)
    assert 0.2 < (depth > 0).float().mean() < 0.9 and images.min() >= 0 and images.max() <= 1


def test_surface_visibility_of_a_shapes_world_object() -> None:
    """Shapes path: renders with surface depth; the points on the camera side of the object are visible, a
    point is seen by some view, and not every point is seen by every view."""
    world = ShapesWorld(32, 256, ["chair"], seed=0)
    rig = build_rig(4, [30.0], 32)
    images, depth = render_shape_views(world, "train", [0], rig)
    assert images.shape == (1, 4, 3, 32, 32) and depth.shape == (1, 4, 32, 32)
    points = world.point_cloud("train", 0)["points"][None]
    visible = rig_visibility(points, rig, tolerance=0.05, surface_depth=depth)[0]
    assert visible.shape == (256, 4)
    assert 0.2 < visible.float().mean() < 0.9
    assert visible.any(dim=1).float().mean() > 0.6


def test_labelled_mask_keeps_a_share_of_every_class() -> None:
    category = torch.tensor([0] * 40 + [5] * 20 + [9] * 3)
    mask = labelled_mask(category, 0.25, seed=1)
    assert [int(mask[category == c].sum()) for c in (0, 5, 9)] == [10, 5, 1]
    assert torch.equal(mask, labelled_mask(category, 0.25, seed=1))
    assert not torch.equal(mask, labelled_mask(category, 0.25, seed=2))
    assert bool(labelled_mask(category, 1.0, seed=0).all())


def test_linear_svm_separates_separable_classes() -> None:
    generator = torch.Generator().manual_seed(0)

    def blobs(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(n) % 3
        return torch.randn(n, 8, generator=generator) + 10 * torch.nn.functional.one_hot(labels, 8), labels * 7
    accuracy, c = linear_svm_accuracy(blobs(60), blobs(30), blobs(30), [0.01, 1.0])
    assert accuracy == 100.0 and c in (0.01, 1.0)


# ------------------------------------------------------------------------------------ end-to-end runs
def test_student_knowledge_is_computed_once_and_tied_to_the_teacher(teacher_run: tuple[Path, Path],
                                                                    tmp_path: Path) -> None:
    teacher_dir, cache = teacher_run
    options = tiny_options(cache, stage="student", teacher_checkpoint=teacher_dir, label_fraction=0.5,
                           views=12)  # the student's own rig options are not used: the teacher's rig is
    metrics, task = fit(options, tmp_path / "student", "val/oa")
    assert {"oa", "macc"} <= set(metrics)
    knowledge = task.knowledge
    assert knowledge.computed and knowledge.path.is_file()
    assert knowledge.descriptors.shape == (16, 4, 64) and knowledge.visibility.shape == (16, 128, 4)

    sample = task.train_set()[0]
    assert set(sample) == {"points", "category", "labelled", "visibility", "teacher_descriptors", "index"}
    assert sample["visibility"].shape == (128, 4) and sample["visibility"].dtype == torch.bool
    assert sample["teacher_descriptors"].shape == (4, 64) and sample["teacher_descriptors"].dtype == torch.float32
    assert set(task.val_set()[0]) == {"points", "category", "index"}
    assert set(task.test_sets()["test"][0]) == {"points", "category", "index"}

    # a second task (another run) reads the cache instead of computing it again
    modified = knowledge.path.stat().st_mtime_ns
    again = build_task(options, seed=0)
    again.setup(torch.device("cpu"), None)
    again.train_set()
    assert not again.knowledge.computed and again.knowledge.path == knowledge.path
    assert knowledge.path.stat().st_mtime_ns == modified
    torch.testing.assert_close(again.knowledge.descriptors, knowledge.descriptors)

    # another teacher checkpoint → another checksum and cache file
    state = load_checkpoint(teacher_dir / "best.pt")
    state["model"]["classifier.weight"] = state["model"]["classifier.weight"] + 1.0
    save_checkpoint(tmp_path / "other_teacher.pt", state)
    train = task.point_split("train")
    description = point_source(options, "train", 0)[1]
    same = prepare_knowledge(teacher_dir, description, train.tensors["points"], task._knowledge_renderer(train),
                             torch.device("cpu"), cache, options.effective_visibility_tolerance, options.splat_radius)
    assert not same.computed and same.path == knowledge.path
    other = prepare_knowledge(tmp_path / "other_teacher.pt", description, train.tensors["points"],
                              task._knowledge_renderer(train), torch.device("cpu"), cache,
                              options.effective_visibility_tolerance, options.splat_radius)
    assert other.teacher_sha256 != knowledge.teacher_sha256 and other.path != knowledge.path and other.computed

    # a damaged cache file is reported in one line and computed again
    knowledge.path.write_bytes(b"not a torch file")
    damaged = build_task(options, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        damaged.train_set()
    assert damaged.knowledge.computed
    assert any("computing the teacher knowledge again" in str(w.message) for w in caught)
    torch.testing.assert_close(damaged.knowledge.descriptors, knowledge.descriptors)


def test_scratch_student_needs_no_teacher(tmp_path: Path) -> None:
    options = tiny_options(tmp_path / "cache", stage="student", distillation_weight=0.0, student="dgcnn")
    metrics, task = fit(options, tmp_path / "scratch", "val/oa")
    assert {"oa", "macc"} <= set(metrics)
    assert task.knowledge is None
    assert set(task.train_set()[0]) == {"points", "category", "labelled", "index"}


def test_segmentation_and_unsupervised_students(teacher_run: tuple[Path, Path], tmp_path: Path) -> None:
    teacher_dir, cache = teacher_run
    segmentation = tiny_options(cache, stage="student", task="segmentation", student="dgcnn",
                                teacher_checkpoint=teacher_dir)
    metrics, task = fit(segmentation, tmp_path / "seg", "val/instance_miou")
    assert {"instance_miou", "class_miou", "point_acc"} <= set(metrics)
    assert 0 <= metrics["instance_miou"] <= 100
    assert task.knowledge.path.is_file()
    assert set(task.train_set()[0]) == {"points", "category", "part_labels", "labelled", "visibility",
                                        "teacher_descriptors", "index"}
    unsupervised = tiny_options(cache, stage="student", task="unsupervised", teacher_checkpoint=teacher_dir)
    metrics, _ = fit(unsupervised, tmp_path / "unsup", "val/svm_oa")
    assert 0 <= metrics["svm_oa"] <= 100 and metrics["svm_c"] in unsupervised.svm_c


def test_modelnet40_point_renders_path(tmp_path: Path) -> None:
    """Real-data path on a tiny ModelNet40 folder written here (resampled layout): point-splat renders for the
    teacher, point z-buffer visibility for the knowledge."""
    from distill3d.data.modelnet40 import write_modelnet40

    rng = np.random.default_rng(0)
    samples = []
    for number in range(16):
        category, split = number % 2, "test" if number >= 12 else "train"
        normals = rng.normal(size=(128, 3))
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        scale = np.array([1.0, 0.4, 0.4]) if category else np.array([0.5, 0.5, 1.0])
        samples.append({"split": split, "category": category, "points": normals * scale, "normals": normals})
    root = write_modelnet40(tmp_path / "modelnet40_normal_resampled", samples, ["a", "b"], layout="resampled")
    common = dict(dataset="modelnet40", data_root=root, num_points=128, views=4, image_size=32, backbone_width=8,
                  descriptor_dim=32, validation_fraction=0.25, cache_dir=tmp_path / "cache")
    _, teacher = fit(Options(stage="teacher", **common), tmp_path / "teacher", "val/oa")
    image = teacher.train_set()[0]["image"]
    assert image.shape == (4, 3, 32, 32) and float(image.std()) > 0.01
    metrics, student = fit(Options(stage="student", teacher_checkpoint=tmp_path / "teacher", **common),
                           tmp_path / "student", "val/oa")
    assert "oa" in metrics and student.knowledge.visibility.shape[1:] == (128, 4)
    assert student.knowledge.path.name.startswith("pointmcd-knowledge-")


@pytest.mark.parametrize("recipe", ["pointmcd_teacher", "pointmcd_student"])
def test_recipes_are_valid_configs(recipe: str) -> None:
    from distill3d.cli.methods import recipe_dir
    from distill3d.engine.config import load_run_config

    config = load_run_config(recipe_dir() / f"{recipe}.yaml", [])
    assert config.method == "pointmcd"
    options = validate_section(Options, config.options, "options")
    assert options.stage == recipe.removeprefix("pointmcd_")
    task = build_task(options, config.seed)
    assert isinstance(task, Task) and config.train.monitor == "val/oa"
