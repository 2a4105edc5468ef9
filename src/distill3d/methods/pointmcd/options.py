"""``options:`` of a pointmcd run (both stages), validated by pydantic; errors name the key."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from distill3d.data.worlds.difficulty import Difficulty
from distill3d.data.worlds.shapes import CATEGORIES

Stage = Literal["teacher", "student"]
TaskKind = Literal["classification", "segmentation", "unsupervised"]
StudentKind = Literal["pointnet", "dgcnn"]
DatasetKind = Literal["shapes", "modelnet40", "shapenetpart"]

#: Smoothing ε of the task loss when ``smoothing`` is null (METHODS.md §4.3): classification 0.2 (both students),
#: part segmentation 0.05 for PointNet and 0.2 (the DGCNN default) for DGCNN.
DEFAULT_SMOOTHING: dict[tuple[str, str], float] = {
    ("classification", "pointnet"): 0.2, ("classification", "dgcnn"): 0.2,
    ("segmentation", "pointnet"): 0.05, ("segmentation", "dgcnn"): 0.2,
}
#: Weight of the task loss when ``task_weight`` is null (METHODS.md §4.3, the official distiller scripts, next to
#: λ = 1 for L_MCD): 0.1 for classification and PointNet segmentation, 1.0 for DGCNN segmentation. Under Adam(W)
#: a scratch student (λ = 0) trains the same with any weight; what the weight sets is the task / L_MCD balance.
DEFAULT_TASK_WEIGHT: dict[tuple[str, str], float] = {
    ("classification", "pointnet"): 0.1, ("classification", "dgcnn"): 0.1,
    ("segmentation", "pointnet"): 0.1, ("segmentation", "dgcnn"): 1.0,
}


class Options(BaseModel):
    """``options:`` of a pointmcd run.

    Stage ``teacher`` trains the multi-view image encoder on renders of the training split; stage ``student``
    trains a point-cloud network with the teacher's cached per-view descriptors (``distillation_weight`` λ > 0) or
    from scratch (λ = 0). The camera rig (``views``, ``view_elevations_deg``, ``image_size``, ``up_axis``) of a
    student is the one its teacher was trained with (read from the teacher checkpoint); a student's own rig
    options are not used.
    """

    model_config = ConfigDict(extra="forbid")

    stage: Stage = "teacher"
    task: TaskKind = "classification"
    student: StudentKind = "pointnet"
    # ------------------------------------------------------------------------------------------ data
    dataset: DatasetKind = "shapes"
    data_root: Path | None = Field(None, description="local dataset folder (modelnet40, shapenetpart)")
    validation_fraction: float = Field(
        0.1, gt=0, lt=1, description="modelnet40: share of the official training shapes held out as val")
    up_axis: Literal["z", "y"] = Field("z", description="up axis of the data (rig azimuths turn about it); "
                                       "the ShapeNetPart release is y-up")
    categories: list[str] | Literal["all"] = Field("all", description="shapes world categories")
    difficulty: Difficulty = Field("standard", description="shapes world preset (easy | standard | hard)")
    data_seed: int | None = Field(None, ge=0, description="shapes world seed (default: the run's seed)")
    num_points: int = Field(1024, gt=0, description="points per cloud")
    train_size: int = Field(1024, gt=0, description="shapes world only (real data: the dataset's size)")
    val_size: int = Field(256, gt=0, description="shapes world only")
    test_size: int = Field(512, gt=0, description="shapes world only")
    cache: bool = Field(True, description="materialise splits and knowledge once in the disk cache "
                        "($DISTILL3D_CACHE or ~/.cache/distill3d)")
    cache_dir: Path | None = Field(None, description="disk cache folder (default: $DISTILL3D_CACHE)")
    # -------------------------------------------------------------------------------------- view rig
    views: int = Field(12, gt=0, description="rendered views (12 for classification, 16 for segmentation in "
                       "the paper); split evenly over the elevation rings")
    view_elevations_deg: list[float] = Field([30.0], min_length=1, description="one ring of cameras per "
                                             "elevation, every 360°/(views per ring) of azimuth")
    image_size: int = Field(64, ge=16, description="view renders, pixels (224 in the paper)")
    visibility_tolerance: float | None = Field(
        None, gt=0, description="depth slack of the visibility test, object units; null = 0.05 for the shapes world "
        "(against the rendered surface depth), 0.1 for real data (against the point z-buffer)")
    splat_radius: int = Field(1, ge=0, description="real data: point splat radius (pixels) of the point renders "
                              "and of the point z-buffer visibility")
    # ------------------------------------------------------------------------------------- teacher
    backbone: Literal["resnet18", "resnet34", "resnet50"] = "resnet18"
    backbone_width: int = Field(32, gt=0, description="channels of the first ResNet stage (64 in the paper)")
    small_input_stem: bool = Field(False, description="3×3 stride-1 stem for tiny images (slower)")
    pretrained_backbone: str | None = Field(
        None, description="teacher warm start: 'builtin' (the shipped shapes-world weights, see distill3d.weights) "
        "or a safetensors file; null = random initialisation")
    descriptor_dim: int = Field(512, gt=0, description="per-view descriptor size (teacher and student)")
    view_loss_weight: float = Field(1.0, ge=0, description="teacher: weight of the per-view classification loss")
    # ------------------------------------------------------------------------------------- student
    teacher_checkpoint: Path | None = Field(None, description="teacher run folder or checkpoint (stage student)")
    distillation_weight: float = Field(1.0, ge=0, description="λ of λ·L_MCD; 0 = scratch student (no teacher)")
    task_weight: float | None = Field(None, ge=0, description="weight of the supervised loss; null = the official "
                                      "scripts' value (0.1 classification and PointNet segmentation, 1.0 DGCNN "
                                      "segmentation)")
    label_fraction: float = Field(1.0, gt=0, le=1, description="share of the training shapes that carry labels "
                                  "(per class, drawn with the run's seed); L_MCD uses every shape")
    smoothing: float | None = Field(None, ge=0, lt=1, description="label smoothing ε; null = the paper's value "
                                    "(0.2 classification, 0.05 PointNet / 0.2 DGCNN segmentation)")
    masking: Literal["exclude", "multiply"] = Field("exclude", description="VAFP: max over visible points only, "
                                                    "or over M·f (official)")
    dgcnn_k: int = Field(20, gt=0, description="DGCNN neighbours")
    dropout: float | None = Field(None, ge=0, lt=1, description="head dropout; null = the network's default")
    scale_augment: tuple[float, float] = Field((2 / 3, 3 / 2), description="anisotropic scale range")
    translate_augment: float = Field(0.2, ge=0, description="random translation range ±, object units")
    svm_c: list[float] = Field([0.01, 0.1, 1.0, 10.0], min_length=1, description="unsupervised: LinearSVC C values "
                               "(selected on val)")
    generate_workers: int = Field(0, ge=0, description="DataLoader workers that render / read splits once")

    @field_validator("teacher_checkpoint", "data_root", "cache_dir")
    @classmethod
    def _absolute(cls, path: Path | None) -> Path | None:
        """Paths to other runs and data are stored absolute, so a run's config.yaml works from any folder."""
        return None if path is None else Path(path).expanduser().resolve()

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, categories: list[str] | str) -> list[str] | str:
        if not categories:
            raise ValueError("must name at least one category (or be 'all')")
        unknown = [] if categories == "all" else [name for name in categories if name not in CATEGORIES]
        if unknown:
            raise ValueError(f"unknown shapes categories {unknown} (known: {', '.join(CATEGORIES)})")
        return categories

    @field_validator("svm_c")
    @classmethod
    def _positive_c(cls, values: list[float]) -> list[float]:
        if any(not value > 0 for value in values):
            raise ValueError(f"every C must be positive, got {values}")
        return values

    @field_validator("scale_augment")
    @classmethod
    def _scale_range(cls, scale: tuple[float, float]) -> tuple[float, float]:
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"must be (low, high) with 0 < low <= high, got {scale}")
        return scale

    @model_validator(mode="after")
    def _check(self) -> Options:
        if self.dataset != "shapes" and self.data_root is None:
            raise ValueError(f"options.data_root is required with dataset: {self.dataset}")
        if self.dataset == "shapes" and self.up_axis != "z":
            raise ValueError("options.up_axis: the shapes world is z-up")
        if self.dataset == "modelnet40" and self.task == "segmentation":
            raise ValueError("options.task: ModelNet40 has no part labels (segmentation needs shapes or shapenetpart)")
        if self.views % len(self.view_elevations_deg):
            raise ValueError(f"options.views ({self.views}) must be a multiple of the number of "
                             f"view_elevations_deg ({len(self.view_elevations_deg)})")
        if self.stage == "student" and self.distillation_weight > 0 and self.teacher_checkpoint is None:
            raise ValueError("options.teacher_checkpoint is required for a distilled student "
                             "(or set distillation_weight: 0 for the scratch student)")
        if self.stage == "student" and self.task == "unsupervised" and self.distillation_weight == 0:
            raise ValueError("options.distillation_weight must be > 0 for task: unsupervised (L_MCD is its only loss)")
        if self.stage == "student" and self.task != "unsupervised" and self.effective_task_weight == 0 \
                and self.distillation_weight == 0:
            raise ValueError("options.task_weight and options.distillation_weight are both 0: nothing to train")
        return self

    @property
    def effective_smoothing(self) -> float:
        """ε of the supervised loss (``smoothing``, or the paper's value for this task and student)."""
        if self.smoothing is not None:
            return self.smoothing
        return DEFAULT_SMOOTHING.get((self.task, self.student), 0.2)

    @property
    def effective_task_weight(self) -> float:
        """Weight of the supervised loss (``task_weight``, or the official value for this task and student)."""
        if self.task_weight is not None:
            return self.task_weight
        return DEFAULT_TASK_WEIGHT.get((self.task, self.student), 1.0)

    @property
    def effective_visibility_tolerance(self) -> float:
        """``visibility_tolerance``, or its default: 0.05 against rendered surfaces (shapes world); 0.1 against the
        point z-buffer (real data), which at 64 px, 1024 points and splat radius 1 agrees best with the surface test
        on shapes-world objects (85 % of the (point, view) pairs; 0.05: 75 %, the visible fraction halved)."""
        if self.visibility_tolerance is not None:
            return self.visibility_tolerance
        return 0.05 if self.dataset == "shapes" else 0.1
