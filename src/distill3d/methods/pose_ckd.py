"""Pose CKD: 3D-augmented contrastive knowledge distillation for category-agnostic viewpoint estimation.

Liu et al., "3D-Augmented Contrastive Knowledge Distillation for Image-based Object Pose Estimation", ICMR 2022
(official code: a fork of PoseFromShape). Two stages, each one ``distill3d train`` run:

**Stage 1 — teacher** (``options.stage: teacher``): image + canonical shape point cloud → fused 3D-augmented
feature → viewpoint heads. ``L_T = L_task + λ_c · InfoNCE(proj(image feature), fused; τ = 0.1)`` — the teacher's
*image-only* feature is pulled towards the 3D-augmented feature of the same sample. As in the official code the
InfoNCE counts the positive twice in its denominator and applies dropout 0.3 to the targets
(``teacher_official_infonce``). Shapes of non-symmetric objects are rotated in azimuth by a random multiple of 5°
(±``azimuth_jitter_steps``) and the azimuth label moves with them, so the teacher must read the shape.

**Stage 2 — student** (``options.stage: student``): image-only network, teacher frozen (eval mode).
``L_S = w_task · L_task + w_logit · Σ_6 heads KL_τ(teacher ‖ student) + w_repr · R(proj_S, proj_T)`` with
``R`` = KL of softmaxed features (official code), in-batch InfoNCE (the paper's "contrastive KD"), the official
code's pose-aware InfoNCE forms (``poseNCE_KD``: negatives weighted by pose distance; ``multiposeNCE_KD``: samples
within 30° are positives) or CRD with a momentum memory bank (Tian et al. 2020; beyond the official code).
Official weights: 0.25 / 0.75 / 0.75.
The baseline student (no KD) is ``w_task = 1, w_logit = 0, representation: none``.

Augmentation (both stages): photometric jitter, box-jitter crop, horizontal flip (a → 2π − a, θ → −θ; the
teacher's point cloud is mirrored too — the official code leaves it unchanged, marked TODO there) and in-plane
rotation (θ → θ + r). Model selection: ``val`` split of the *seen* categories. Evaluation: Acc@π/6 and MedErr
(per category, then averaged over categories) on held-out test images of seen and of unseen categories.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from torch import nn
from torch.utils.data import Dataset, Subset

from distill3d.data.augment import geometric_viewpoint_augmentation, photometric_jitter
from distill3d.data.cache import MaterializedDataset
from distill3d.data.worlds.difficulty import Difficulty
from distill3d.data.worlds.shapes import SEEN_CATEGORIES, UNSEEN_CATEGORIES, ShapesViewpointDataset
from distill3d.engine.task import TaskBase
from distill3d.errors import Distill3dError
from distill3d.geometry.rotations import rotation_z
from distill3d.losses.contrastive import CRDLoss, InfoNCELoss, PoseInfoNCELoss, logit_kd_loss
from distill3d.losses.viewpoint import viewpoint_task_loss
from distill3d.metrics.viewpoint import viewpoint_metrics
from distill3d.models.pose import PoseStudent, PoseTeacher
from distill3d.models.resnet import ResNet, load_encoder_weights
from distill3d.weights import resolve_encoder_weights

DESCRIPTION = "Pose CKD (Liu et al. 2022): 3D-augmented teacher → image-only student, viewpoint estimation"

SAMPLE_KEYS = ("image", "viewpoint", "category", "symmetry_order", "points")


class Options(BaseModel):
    """``options:`` of a pose_ckd run."""

    model_config = ConfigDict(extra="forbid")

    stage: Literal["teacher", "student"] = "teacher"
    # data
    dataset: Literal["shapes", "pascal3d", "objectnet3d"] = "shapes"
    data_root: Path | None = Field(None, description="local dataset folder (pascal3d, objectnet3d)")
    validation_fraction: float = Field(
        0.1, gt=0, lt=1, description="real data: share of the training objects held out for model selection")
    difficulty: Difficulty = Field("standard", description="shapes world preset (easy | standard | hard)")
    data_seed: int | None = Field(None, ge=0, description="shapes world seed (default: the run's seed); a fixed "
                                  "value shares the rendered splits between runs of different seeds")
    image_size: int = Field(64, gt=0)
    num_points: int = Field(512, gt=0, description="teacher's shape point cloud size")
    train_size: int = Field(8000, gt=0, description="shapes world only (real data: the dataset's size)")
    val_size: int = Field(800, gt=0, description="shapes world only")
    test_size: int = Field(800, gt=0, description="shapes world only: images per test split (seen, unseen)")
    cache: bool = Field(True, description="render each split once into the disk cache ($DISTILL3D_CACHE)")
    generate_workers: int = Field(2, ge=0)
    # networks
    backbone: Literal["resnet18", "resnet34", "resnet50"] = "resnet18"
    backbone_width: int = Field(32, gt=0, description="channels of the first ResNet stage (64 in the paper)")
    small_input_stem: bool = Field(False, description="3×3 stride-1 stem for tiny images (slower)")
    pretrained_backbone: str | None = Field(
        None, description="warm start of the image encoder: 'builtin' (the shipped shapes-world weights, see "
        "distill3d.weights) or a safetensors file; null = random initialisation")
    feature_dim: int = Field(200, gt=0, description="fused (teacher) / compressed (student) feature size")
    shape_dim: int = Field(256, gt=0)
    # augmentation
    augment: bool = True
    flip_p: float = Field(0.5, ge=0, le=1)
    rotate_p: float = Field(0.5, ge=0, le=1)
    rotate_std_deg: float = Field(30.0, ge=0)
    crop_jitter: float = Field(0.1, ge=0, lt=0.5)
    # stage 1
    contrastive_weight: float = Field(0.5, ge=0)
    contrastive_temperature: float = Field(0.1, gt=0)
    teacher_official_infonce: bool = Field(True, description="positive twice in the denominator + target dropout 0.3")
    azimuth_jitter_steps: int = Field(8, ge=0, description="shape azimuth jitter: U{-n..n}·5° (non-symmetric only)")
    # stage 2
    teacher_checkpoint: Path | None = None
    task_weight: float = Field(0.25, ge=0)
    logit_weight: float = Field(0.75, ge=0)
    representation: Literal["none", "kl", "infonce", "pose_infonce", "multipose_infonce", "crd"] = Field(
        "kl", description="representation KD: kl (official), infonce (the paper's contrastive KD), pose_infonce / "
        "multipose_infonce (the official code's pose-aware variants poseNCE_KD / multiposeNCE_KD), crd")
    representation_weight: float = Field(0.75, ge=0)
    kd_temperature: float = Field(1.0, gt=0)
    infonce_temperature: float = Field(0.1, gt=0)
    pose_positive_threshold_deg: float = Field(30.0, gt=0, le=180,
                                               description="multipose_infonce: viewpoints this close are positives")
    crd_negatives: int = Field(4096, gt=0)
    crd_temperature: float = Field(0.07, gt=0)
    crd_momentum: float = Field(0.5, ge=0, lt=1)
    crd_embed_dim: int = Field(128, gt=0)

    @field_validator("teacher_checkpoint", "data_root")
    @classmethod
    def _absolute(cls, path: Path | None) -> Path | None:
        """Paths to other runs and data are stored absolute, so a run's config.yaml works from any folder."""
        return None if path is None else Path(path).expanduser().resolve()

    @model_validator(mode="after")
    def _check_teacher(self) -> Options:
        if self.dataset != "shapes" and self.data_root is None:
            raise ValueError(f"options.data_root is required with dataset: {self.dataset}")
        needs_teacher = self.stage == "student" and (self.logit_weight > 0 or self.representation != "none")
        if needs_teacher and self.teacher_checkpoint is None:
            raise ValueError("options.teacher_checkpoint is required for a distilled student "
                             "(or set logit_weight: 0 and representation: none for the baseline)")
        return self


def build_image_encoder(options: Options) -> ResNet:
    """The ResNet image encoder (architecture only; :meth:`PoseCKDTask.warm_start` loads pre-trained weights)."""
    return ResNet(options.backbone, 0, options.backbone_width, options.small_input_stem)


def build_teacher(options: Options) -> PoseTeacher:
    return PoseTeacher(build_image_encoder(options), options.shape_dim, options.feature_dim)


def build_student(options: Options) -> PoseStudent:
    return PoseStudent(build_image_encoder(options), options.feature_dim)


class StudentWithDistillers(nn.Module):
    """What stage 2 trains and checkpoints: the student plus the CRD embeddings and memory (when used)."""

    def __init__(self, student: PoseStudent, crd: CRDLoss | None) -> None:
        super().__init__()
        self.student = student
        self.crd = crd

    def forward(self, images: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        return self.student(images)


def rotate_shapes_in_azimuth(points: torch.Tensor, viewpoint: torch.Tensor,
                             delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate canonical shapes (B, N, 3) by ``delta`` (B,) radians about the up (z) axis; azimuth → azimuth + delta.

    With ``R = Rz(θ)·Rx(e−π/2)·Rz(−a)`` the camera sees ``R(a)·X = R(a + δ)·Rz(δ)·X``, so the rotated shape
    and the shifted azimuth describe the same image.
    """
    rotated = points @ rotation_z(delta).to(points.dtype).transpose(1, 2)
    azimuth = torch.remainder(viewpoint[:, 0] + delta, 2 * math.pi)
    return rotated, torch.cat([azimuth[:, None], viewpoint[:, 1:]], dim=1)


class PoseCKDTask(TaskBase):
    """The engine's :class:`~distill3d.engine.task.Task` for both stages."""

    def __init__(self, options: Options, seed: int) -> None:
        self.options, self.seed = options, seed
        self.distills = options.stage == "student" and (options.logit_weight > 0 or options.representation != "none")
        self._teacher: PoseTeacher | None = None
        self._device = torch.device("cpu")
        self._datasets: dict[tuple[str, str], Dataset] = {}
        official = options.teacher_official_infonce  # stage 1: positive twice + target dropout 0.3 (official code)
        self.teacher_contrast = InfoNCELoss(options.contrastive_temperature, duplicate_positive=official,
                                            target_dropout=0.3 if official else 0.0)
        self.student_contrast = InfoNCELoss(options.infonce_temperature)
        self.student_pose_contrast = PoseInfoNCELoss(
            options.infonce_temperature,
            options.pose_positive_threshold_deg if options.representation == "multipose_infonce" else None)

    @property
    def teacher(self) -> PoseTeacher | None:
        """The frozen stage-1 teacher of a distilled student, read from ``teacher_checkpoint`` when training first
        needs it (evaluating, predicting or exporting a student never does) and kept on the training device."""
        if self._teacher is None and self.distills and self.options.teacher_checkpoint is not None:
            self._teacher = load_teacher(self.options.teacher_checkpoint).to(self._device)
        return self._teacher

    @teacher.setter
    def teacher(self, teacher: PoseTeacher | None) -> None:
        self._teacher = teacher if teacher is None else teacher.to(self._device)

    # ------------------------------------------------------------------------------------------- data
    def _materialize(self, source: Dataset, description: dict[str, Any]) -> Dataset:
        o = self.options
        return MaterializedDataset(source, SAMPLE_KEYS, description if o.cache else None,
                                   num_workers=o.generate_workers)

    def _dataset(self, split: str, categories: str) -> Dataset:
        """``split`` in train / val (model selection) / test; ``categories`` seen or unseen."""
        key = (split, categories)
        if key in self._datasets:
            return self._datasets[key]
        o = self.options
        if o.dataset == "shapes":
            seed = self.seed if o.data_seed is None else o.data_seed
            names = SEEN_CATEGORIES if categories == "seen" else UNSEEN_CATEGORIES
            size = {"train": o.train_size, "val": o.val_size, "test": o.test_size}[split]
            source: Dataset = ShapesViewpointDataset(split, size, names, o.image_size, o.num_points, seed,
                                                     difficulty=o.difficulty)
            description = {"world": "shapes-viewpoint", "split": split, "size": size, "categories": names,
                           "image_size": o.image_size, "n_points": o.num_points, "seed": seed,
                           "difficulty": o.difficulty, "world_version": 2}
        else:
            source = self._real_dataset(split, categories)
            description = {"world": o.dataset, "root": str(Path(o.data_root).resolve()), "split": split,
                           "categories": categories, "validation_fraction": o.validation_fraction,
                           "image_size": o.image_size, "n_points": o.num_points, "seed": self.seed}
        self._datasets[key] = self._materialize(source, description)
        return self._datasets[key]

    def _real_dataset(self, split: str, categories: str) -> Dataset:
        """Pascal3D+ / ObjectNet3D: train and val are a fixed split of the training objects; test is the
        benchmark's evaluation split (Pascal3D+ val, ObjectNet3D val — as PoseFromShape and StarMap report)."""
        o = self.options
        if o.dataset == "pascal3d":
            from distill3d.data.pascal3d import Pascal3DDataset as RealDataset
        else:
            from distill3d.data.objectnet3d import ObjectNet3DDataset as RealDataset
        common = {"image_size": o.image_size, "n_points": o.num_points, "seed": self.seed}
        if split == "test":
            return RealDataset(o.data_root, "val", categories, **common)
        full = RealDataset(o.data_root, "train", categories, **common)
        order = torch.randperm(len(full), generator=torch.Generator().manual_seed(12345)).tolist()
        n_val = max(1, round(o.validation_fraction * len(full)))
        return Subset(full, sorted(order[:n_val] if split == "val" else order[n_val:]))

    def train_set(self) -> Dataset:
        return self._dataset("train", "seen")

    def val_set(self) -> Dataset:
        return self._dataset("val", "seen")

    def test_sets(self) -> dict[str, Dataset]:
        return {"test_seen": self._dataset("test", "seen"), "test_unseen": self._dataset("test", "unseen")}

    def validation_sets(self) -> dict[str, Dataset]:
        """Validation images of the seen and of the unseen categories (held out from training and from the test
        splits): what tuning for unseen-category generalisation may look at (``benchmarks/pose_ckd_tuning.py``)."""
        return {"val_seen": self._dataset("val", "seen"), "val_unseen": self._dataset("val", "unseen")}

    # ------------------------------------------------------------------------------------------ model
    def build_model(self) -> nn.Module:
        o = self.options
        if o.stage == "teacher":
            return build_teacher(o)
        crd = None
        if o.representation == "crd":
            crd = CRDLoss(o.feature_dim, o.feature_dim, len(self.train_set()), o.crd_embed_dim, o.crd_negatives,
                          o.crd_temperature, o.crd_momentum)
        return StudentWithDistillers(build_student(o), crd)

    def warm_start(self, model: nn.Module) -> None:
        """Load ``options.pretrained_backbone`` into the image encoder of a freshly built model."""
        o = self.options
        if o.pretrained_backbone is not None:
            encoder = model.image_encoder if isinstance(model, PoseTeacher) else model.student.image_encoder
            load_encoder_weights(encoder, resolve_encoder_weights(o.pretrained_backbone, o.backbone, o.backbone_width))

    # ---------------------------------------------------------------------------------- augmentation
    def augment(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Augmented (images, viewpoints, teacher shape points) with consistent labels."""
        o = self.options
        images, viewpoint, points = batch["image"], batch["viewpoint"], batch["points"]
        if not o.augment:
            return images, viewpoint, points
        images, viewpoint, flip = geometric_viewpoint_augmentation(
            photometric_jitter(images), viewpoint, batch["symmetry_order"], o.flip_p, o.rotate_p,
            math.radians(o.rotate_std_deg), o.crop_jitter)
        points = torch.where(flip[:, None, None], points * points.new_tensor([-1.0, 1.0, 1.0]), points)
        return images, viewpoint, points

    # -------------------------------------------------------------------------------------- training
    def training_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        images, viewpoint, points = self.augment(batch)
        if self.options.stage == "teacher":
            return self._teacher_step(model, images, viewpoint, points, batch["symmetry_order"])
        return self._student_step(model, images, viewpoint, points, batch["index"])

    def _teacher_step(self, model: nn.Module, images: torch.Tensor, viewpoint: torch.Tensor, points: torch.Tensor,
                      symmetry_order: torch.Tensor) -> dict[str, torch.Tensor]:
        o = self.options
        steps = torch.randint(-o.azimuth_jitter_steps, o.azimuth_jitter_steps + 1, (images.shape[0],),
                              device=images.device)
        delta = torch.where(symmetry_order == 1, steps.float() * math.radians(5.0), torch.zeros(()))
        points, viewpoint = rotate_shapes_in_azimuth(points, viewpoint, delta)
        heads, fused, projected = model(images, points)
        task = viewpoint_task_loss(heads, viewpoint)
        contrast = self.teacher_contrast(projected.float(), fused.float())
        return {"loss": task + o.contrastive_weight * contrast, "task": task, "contrastive": contrast}

    def _student_step(self, model: nn.Module, images: torch.Tensor, viewpoint: torch.Tensor, points: torch.Tensor,
                      index: torch.Tensor) -> dict[str, torch.Tensor]:
        o = self.options
        heads, projected = model(images)
        task = viewpoint_task_loss(heads, viewpoint)
        out = {"task": task}
        loss = o.task_weight * task
        if self.distills:
            assert self.teacher is not None  # Options require teacher_checkpoint when distilling
            with torch.no_grad():
                teacher_heads, _, teacher_projected = self.teacher(images, points)
            if o.logit_weight > 0:
                logit = sum(logit_kd_loss(heads[k].float(), teacher_heads[k].float(), o.kd_temperature)
                            for k in heads)
                loss = loss + o.logit_weight * logit
                out["logit_kd"] = logit
            representation = self._representation_loss(model, projected.float(), teacher_projected.float(), index,
                                                        viewpoint)
            if representation is not None:
                loss = loss + o.representation_weight * representation
                out["representation_kd"] = representation
        return {"loss": loss, **out}

    def setup(self, device: torch.device, dist: Any) -> None:
        """The frozen teacher lives on the task, not in the trained model: it follows the training device."""
        self._device = torch.device(device)
        if self._teacher is not None:
            self._teacher.to(self._device)

    def _representation_loss(self, model: nn.Module, student: torch.Tensor, teacher: torch.Tensor,
                             index: torch.Tensor, viewpoint: torch.Tensor) -> torch.Tensor | None:
        o = self.options
        if o.representation == "kl":
            return logit_kd_loss(student, teacher, o.kd_temperature)
        if o.representation == "infonce":
            return self.student_contrast(student, teacher)
        if o.representation in ("pose_infonce", "multipose_infonce"):
            return self.student_pose_contrast(student, teacher, viewpoint)
        if o.representation == "crd":
            crd = (model.module if hasattr(model, "module") else model).crd
            return crd(student, teacher, index)
        return None

    # ------------------------------------------------------------------------------------ evaluation
    def predictions(self, model: nn.Module, batches: Iterable[dict[str, Any]]
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decoded viewpoints (N, 3) radians, true viewpoints (N, 3) radians (both float64) and category ids (N,)."""
        predicted, truth, categories = [], [], []
        for batch in batches:
            if self.options.stage == "teacher":
                heads = model(batch["image"], batch["points"])[0]
            else:
                heads = model(batch["image"])[0]
            predicted.append(model_bins(model).decode({k: v.float() for k, v in heads.items()}))
            truth.append(batch["viewpoint"])
            categories.append(batch["category"])
        return torch.cat(predicted).double(), torch.cat(truth).double(), torch.cat(categories)

    def evaluate(self, model: nn.Module, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
        result = viewpoint_metrics(*self.predictions(model, batches))
        return {"acc_pi6": result.mean_acc_pi_6_percent, "med_err": result.mean_med_err_deg,
                "acc_pi6_all": result.all_acc_pi_6_percent, "med_err_all": result.all_med_err_deg}


def viewpoint_chance_level(task: PoseCKDTask, draws: int = 5, seed: int = 0) -> dict[str, dict[str, float]]:
    """Acc@π/6 and MedErr of guessing: each test image gets the label of a random training image.

    Returns ``{test split: {"acc_pi6", "med_err"}}`` averaged over ``draws`` guesses (the level printed beside
    every table: what a model that ignores its input scores).
    """
    generator = torch.Generator().manual_seed(seed)
    train = task.train_set()
    labels = torch.stack([train[i]["viewpoint"] for i in range(len(train))]) if not isinstance(
        train, MaterializedDataset) else train.tensors["viewpoint"]
    out = {}
    for name, dataset in task.test_sets().items():
        if isinstance(dataset, MaterializedDataset):
            truth, categories = dataset.tensors["viewpoint"], dataset.tensors["category"]
        else:
            items = [dataset[i] for i in range(len(dataset))]
            truth = torch.stack([x["viewpoint"] for x in items])
            categories = torch.stack([x["category"] for x in items])
        results = []
        for _ in range(draws):
            guess = labels[torch.randint(len(labels), (len(truth),), generator=generator)]
            results.append(viewpoint_metrics(guess.double(), truth.double(), categories))
        out[name] = {"acc_pi6": sum(r.mean_acc_pi_6_percent for r in results) / draws,
                     "med_err": sum(r.mean_med_err_deg for r in results) / draws}
    return out


def model_bins(model: nn.Module):
    """The bin layout of a teacher, student or wrapped student."""
    inner = model.student if isinstance(model, StudentWithDistillers) else model
    return inner.heads.bins


def load_teacher(path: Path) -> PoseTeacher:
    """A frozen stage-1 teacher from its checkpoint (its run config rebuilds the architecture)."""
    from distill3d.engine.checkpoint import load_checkpoint, resolve_checkpoint

    checkpoint = resolve_checkpoint(path)
    state = load_checkpoint(checkpoint)
    config = state.get("config", {})
    if config.get("method") != "pose_ckd" or config.get("options", {}).get("stage") != "teacher":
        raise Distill3dError(f"{checkpoint}: not a pose_ckd teacher checkpoint (stage 1)")
    teacher = build_teacher(Options.model_validate(config["options"]))
    teacher.load_state_dict(state["model"])
    teacher.eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher


def build_task(options: Options, seed: int) -> PoseCKDTask:
    return PoseCKDTask(options, seed)


# ------------------------------------------------------------------------------------- deployment
class ViewpointPredictor(nn.Module):
    """The deployable image-only model: images (B, 3, S, S) in [0, 1] → viewpoints (B, 3) radians."""

    def __init__(self, student: PoseStudent) -> None:
        super().__init__()
        self.student = student

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.student.predict(images)


def load_student(state: dict[str, Any]) -> tuple[PoseStudent, Options]:
    """The image-only student of a stage-2 checkpoint state (as read by ``load_checkpoint``), in eval mode."""
    options = Options.model_validate(state.get("config", {}).get("options", {}))
    if options.stage != "student":
        raise Distill3dError("this is a stage-1 teacher checkpoint: it needs a shape as input; "
                             "predict and export take an image-only student (options.stage: student)")
    student = build_student(options)
    prefix = "student."
    student.load_state_dict({k[len(prefix):]: v for k, v in state["model"].items() if k.startswith(prefix)})
    return student.eval(), options


def predict(state: dict[str, Any], image_paths: list[Path], out_dir: Path) -> list[str]:
    """Predict the viewpoint of the object in each image; write ``<name>_viewpoint.png`` with the axes drawn.

    Images are resized (longer side) to the training size and zero-padded, as the training crops. Axes are drawn
    with the shapes world's camera (focal 1.1·size, object 3 units away): x red, y green, z (up) blue.
    """
    from distill3d.data.worlds.shapes import ShapesWorld, intrinsics, viewpoint_extrinsics
    from distill3d.viz import draw_pose_axes, load_image, save_image, to_pil

    student, options = load_student(state)
    size = options.image_size
    images = torch.stack([load_image(path, size) for path in image_paths])
    with torch.no_grad():
        viewpoints = student.predict(images).double()
    K = intrinsics(ShapesWorld.focal_factor * size, (size - 1) / 2, (size - 1) / 2)[0]
    lines = []
    for path, image, viewpoint in zip(image_paths, images, viewpoints, strict=True):
        R, t = viewpoint_extrinsics(*viewpoint.tolist(), 3.0)
        picture = draw_pose_axes(to_pil(image, 4), K, R[0], t[0], zoom=4)
        written = save_image(picture, Path(out_dir) / f"{Path(path).stem}_viewpoint.png")
        a, e, th = torch.rad2deg(viewpoint).tolist()
        lines.append(f"{path}: azimuth {a:.1f}°, elevation {e:.1f}°, in-plane {th:.1f}° → {written}")
    return lines


def export(state: dict[str, Any], out: Path, export_format: str) -> Path:
    """Write the image-only student as TorchScript (``.pt``) or ONNX (``.onnx``); input (B, 3, S, S) in [0, 1]."""
    import io

    from distill3d.files import atomic_write_bytes

    student, options = load_student(state)
    predictor = ViewpointPredictor(student).eval()
    example = torch.rand(2, 3, options.image_size, options.image_size)
    buffer = io.BytesIO()
    if export_format == "torchscript":
        with torch.no_grad():
            traced = torch.jit.trace(predictor, example)
        torch.jit.save(traced, buffer)
    elif export_format == "onnx":
        try:
            import onnx  # noqa: F401
        except ImportError:
            raise Distill3dError("ONNX export needs the 'onnx' package: pip install 'distill3d[export]'") from None
        torch.onnx.export(predictor, (example,), buffer, input_names=["images"], output_names=["viewpoint"],
                          dynamic_axes={"images": {0: "batch"}, "viewpoint": {0: "batch"}}, dynamo=False)
    else:
        raise Distill3dError(f"unknown export format '{export_format}' (torchscript or onnx)")
    atomic_write_bytes(out, buffer.getvalue())
    return Path(out)
