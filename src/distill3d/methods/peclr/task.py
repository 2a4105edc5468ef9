"""PeCLR's two stages as engine tasks: contrastive pre-training (PeCLR or SimCLR) and 2.5D fine-tuning."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from torch import nn
from torch.utils.data import Dataset

from distill3d.data.cache import MaterializedDataset
from distill3d.data.freihand import FreiHANDDataset
from distill3d.data.hand_augment import (
    appearance_augmentation,
    sample_geometric_params,
    transform_points,
    warp_images,
)
from distill3d.data.worlds.difficulty import Difficulty
from distill3d.data.worlds.hands import HandsDataset
from distill3d.engine.task import TaskBase
from distill3d.errors import Distill3dError
from distill3d.geometry.hand25d import hand25d_to_xyz, root_depth_from_bones, xyz_to_hand25d
from distill3d.geometry.hand_skeleton import MEAN_BONE_LENGTHS, PARENTS
from distill3d.losses.contrastive import NTXentLoss
from distill3d.methods.peclr.equivariance import canonicalise_projections
from distill3d.methods.peclr.lars import lars_scale_gradients
from distill3d.metrics.hand import HandPoseResult, hand_pose_metrics
from distill3d.models.hand_pose import (
    ContrastiveHandNet,
    Hand25DHeatmapNet,
    Hand25DNet,
    gaussian_heatmap_targets,
)
from distill3d.models.resnet import ResNet, load_torchvision_state_dict

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LABELLED_KEYS = ("image", "K", "joints_xyz", "joints_uv", "scale")
ROOT_DEPTH_RANGE = (4.0, 50.0)
"""Clamp of the scale-normalised root depth at prediction time (PeCLR's released model)."""
MEAN_BONE_UNITS = torch.from_numpy(MEAN_BONE_LENGTHS / MEAN_BONE_LENGTHS[10])
"""Mean bone lengths in reference-bone units: the prior of the all-bones root refinement."""
ARCHITECTURE_KEYS = ("backbone", "backbone_width", "small_input_stem", "image_size")


class Options(BaseModel):
    """``options:`` of a peclr run (``stage: pretrain`` or ``stage: finetune``)."""

    model_config = ConfigDict(extra="forbid")

    stage: Literal["pretrain", "finetune"] = "pretrain"
    # data
    dataset: Literal["hands", "freihand"] = "hands"
    difficulty: Difficulty = Field("standard", description="hands world preset: easy | standard | hard")
    freihand_root: Path | None = Field(None, description="FreiHAND download folder (dataset: freihand)")
    image_size: int = Field(64, gt=0, description="network input side (px); PeCLR used 128")
    unlabelled_size: int = Field(10_000, gt=0, description="hands world: pre-training images")
    labelled_size: int = Field(2_000, gt=0, description="hands world: size of the labelled split")
    labelled_fraction: float = Field(1.0, gt=0, le=1, description="share of the labelled split used to fine-tune")
    val_size: int = Field(300, gt=0, description="hands world: validation images (FreiHAND: held-out frames)")
    test_size: int = Field(1_000, gt=0, description="hands world: test images")
    data_seed: int = Field(0, description="hands world: seed of the samples (fixed across training seeds)")
    cache: bool = Field(True, description="render each hands-world split once into the disk cache")
    generate_workers: int = Field(0, ge=0)
    # network
    backbone: Literal["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"] = "resnet18"
    backbone_width: int = Field(32, gt=0, description="channels of the first ResNet stage (64 = torchvision)")
    small_input_stem: bool = False
    imagenet_checkpoint: Path | None = Field(None, description="torchvision ResNet state dict to start from")
    pretrained_backbone: str | None = Field(
        None, description="generic warm start of the encoder: 'builtin' (shipped shapes-classification weights, "
        "distill3d.weights) or a safetensors file; the PeCLR/SimCLR pre-training and the supervised-only "
        "baseline then all start from it")
    projection_hidden: int = Field(512, gt=0)
    projection_dim: int = Field(128, gt=0, description="even: read as projection_dim/2 points in the plane")
    # pre-training
    objective: Literal["peclr", "simclr"] = "peclr"
    temperature: float = Field(0.5, gt=0)
    rotate: bool = True
    crop: bool = True
    max_angle_deg: float = Field(45.0, ge=0)
    max_jitter: float = Field(0.1, ge=0, lt=0.5, description="crop jitter, fraction of the image side")
    scale_range: tuple[float, float] = (0.9, 1.1)
    appearance_strength: float = Field(1.0, ge=0)
    global_negatives: bool = Field(True, description="under DDP, contrast against every process's embeddings")
    lars: bool = Field(False, description="wrap the engine's optimiser in LARS (official: Adam + LARS)")
    lars_eta: float = Field(0.02, gt=0)
    lars_weight_decay: float = Field(1e-6, ge=0, description="applied by LARS to weights (not bias/BN)")
    # fine-tuning
    pretrained_checkpoint: Path | None = Field(None, description="peclr pre-training checkpoint or run folder")
    freeze_encoder: bool = False
    head: Literal["heatmap", "linear"] = Field(
        "heatmap", description="2.5D head: integral heat maps on a top-down decoder, or PeCLR's linear head")
    heatmap_from_stem: bool = Field(
        True, description="heat-map head: decode down to the stem (stride 2 at 64 px) or stop at layer1 (stride 4, "
                          "≈1.7× faster training step)")
    z_weight: float = Field(5.0, ge=0, description="α in L1(uv) + α·L1(z_rel)")
    heatmap_weight: float = Field(0.5, ge=0, description="heat-map head: weight of the Gaussian heat-map CE")
    root: Literal["bones", "closed_form"] = Field(
        "bones", description="root depth at prediction: fit to all bones (robust) or Iqbal's one-bone closed form")
    finetune_augment: bool = True
    finetune_max_angle_deg: float = Field(30.0, ge=0)
    finetune_max_jitter: float = Field(0.05, ge=0, lt=0.5)

    @field_validator("pretrained_checkpoint", "freihand_root", "imagenet_checkpoint")
    @classmethod
    def _absolute(cls, path: Path | None) -> Path | None:
        """Paths to other runs and data are stored absolute, so a run's config.yaml works from any folder."""
        return None if path is None else Path(path).expanduser().resolve()

    @model_validator(mode="after")
    def _check(self) -> Options:
        if self.dataset == "freihand" and self.freihand_root is None:
            raise ValueError("options.freihand_root is required with dataset: freihand")
        if self.projection_dim % 2:
            raise ValueError("options.projection_dim must be even (pairs of coordinates)")
        if self.stage == "pretrain" and self.pretrained_checkpoint is not None:
            raise ValueError("options.pretrained_checkpoint belongs to stage: finetune")
        return self


def scaled_learning_rate(base_lr: float, batch_size: int) -> float:
    """PeCLR's rule ``lr = base_lr · √batch`` (official: 1e-4 · √2048 ≈ 4.5e-3)."""
    return base_lr * batch_size**0.5


def normalise_images(images: torch.Tensor) -> torch.Tensor:
    """ImageNet mean/std normalisation of (B, 3, H, W) images in [0, 1] (official input convention)."""
    mean = images.new_tensor(IMAGENET_MEAN)[None, :, None, None]
    std = images.new_tensor(IMAGENET_STD)[None, :, None, None]
    return (images - mean) / std


def build_encoder(options: Options) -> ResNet:
    """The ResNet encoder (architecture only; the tasks' ``warm_start`` loads weights into it)."""
    return ResNet(options.backbone, 0, options.backbone_width, options.small_input_stem)


def warm_start_encoder(encoder: ResNet, options: Options) -> None:
    """Start the encoder from ``imagenet_checkpoint`` (torchvision) or ``pretrained_backbone`` (safetensors)."""
    if options.imagenet_checkpoint is not None:
        load_torchvision_state_dict(encoder, options.imagenet_checkpoint)
    if options.pretrained_backbone is not None:
        from distill3d.models.resnet import load_encoder_weights
        from distill3d.weights import resolve_encoder_weights

        load_encoder_weights(encoder, resolve_encoder_weights(options.pretrained_backbone, options.backbone,
                                                              options.backbone_width))


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


class _HandData:
    """The datasets of both stages (hands world, rendered once and cached; or FreiHAND from disk)."""

    def __init__(self, options: Options, seed: int) -> None:
        self.options, self.seed = options, seed
        self._cache: dict[str, Dataset] = {}

    def _world(self, split: str, size: int) -> Dataset:
        if split not in self._cache:
            o = self.options
            keys = ("image",) if split == "unlabelled" else LABELLED_KEYS
            description = {"world": "hands", "split": split, "size": size, "seed": o.data_seed,
                           "image_size": o.image_size, "difficulty": o.difficulty}
            world = HandsDataset(split, size, o.data_seed, o.image_size, difficulty=o.difficulty)
            self._cache[split] = MaterializedDataset(world, keys,
                                                     description if o.cache else None,
                                                     num_workers=o.generate_workers)
        return self._cache[split]

    def _freihand_frames(self) -> tuple[FreiHANDDataset, int]:
        """(training split, n_val): the last n_val = min(val_size, max(1, N // 10)) training frames validate."""
        o = self.options
        probe = FreiHANDDataset(o.freihand_root, "training", (0,), o.image_size)
        if probe.num_frames < 2:
            raise Distill3dError(f"{o.freihand_root}: {probe.num_frames} training frame(s); fine-tuning needs at "
                                 "least 2 (one to train on, one to validate)")
        n_val = min(o.val_size, max(1, probe.num_frames // 10))
        return probe, n_val

    def unlabelled(self) -> Dataset:
        o = self.options
        if o.dataset == "hands":
            return self._world("unlabelled", o.unlabelled_size)
        return FreiHANDDataset(o.freihand_root, "training", (0, 1, 2, 3), o.image_size)

    def labelled(self) -> Dataset:
        o = self.options
        if o.dataset == "hands":
            return self._world("labelled", max(1, round(o.labelled_fraction * o.labelled_size)))
        probe, n_val = self._freihand_frames()
        n_train = probe.num_frames - n_val
        frames = range(max(1, round(o.labelled_fraction * n_train)))
        return FreiHANDDataset(o.freihand_root, "training", (0, 1, 2, 3), o.image_size, frames)

    def val(self) -> Dataset:
        o = self.options
        if o.dataset == "hands":
            return self._world("val", o.val_size)
        probe, n_val = self._freihand_frames()
        return FreiHANDDataset(o.freihand_root, "training", (0,), o.image_size,
                               range(probe.num_frames - n_val, probe.num_frames))

    def test(self) -> dict[str, Dataset]:
        o = self.options
        if o.dataset == "hands":
            return {"test": self._world("test", o.test_size)}
        evaluation = FreiHANDDataset(o.freihand_root, "evaluation", (0,), o.image_size)
        return {"test": evaluation} if evaluation.xyz is not None else {"val": self.val()}


# ------------------------------------------------------------------------------------------- pre-training
class PretrainTask(TaskBase):
    """Contrastive pre-training: two views per image, PeCLR (equivariant) or SimCLR (invariant) NT-Xent."""

    def __init__(self, options: Options, seed: int) -> None:
        self.options, self.seed = options, seed
        self.data = _HandData(options, seed)
        self.appearance = appearance_augmentation(options.appearance_strength)
        self.loss = NTXentLoss(options.temperature, gather_distributed=options.global_negatives)

    def build_model(self) -> nn.Module:
        o = self.options
        return ContrastiveHandNet(build_encoder(o), o.projection_hidden, o.projection_dim)

    def warm_start(self, model: nn.Module) -> None:
        warm_start_encoder(model.encoder, self.options)

    def parameter_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        """With LARS the inner optimiser's weight decay is off: LARS applies its own, to weights only."""
        groups = super().parameter_groups(model)
        return [{**group, "weight_decay": 0.0} for group in groups] if self.options.lars else groups

    def before_optimizer_step(self, model: nn.Module, optimizer: torch.optim.Optimizer, step: int) -> None:
        """LARS (official: Adam + LARS): rescale the weights' gradients by their trust ratio before the step."""
        o = self.options
        if o.lars:
            lars_scale_gradients(optimizer.param_groups, o.lars_eta, o.lars_weight_decay)

    def train_set(self) -> Dataset:
        return self.data.unlabelled()

    def val_set(self) -> Dataset | None:
        return None

    def make_view(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """One augmented view: (images (B, 3, S, S) normalised, angle_deg (B,) | None, jitter (B, 2) | None)."""
        o = self.options
        params = sample_geometric_params(images.shape[0], images.shape[-1], o.max_angle_deg, o.max_jitter,
                                         o.scale_range, o.rotate, o.crop)
        view = warp_images(images, params.matrix.to(images.device))
        view = self.appearance(view.float()).clamp(0, 1)
        angle = params.angle_deg.to(images.device) if o.rotate else None
        jitter = params.jitter_normalised.to(images.device) if o.crop else None
        return normalise_images(view), angle, jitter

    def contrastive_loss(self, z1: torch.Tensor, z2: torch.Tensor, views: tuple[tuple, tuple]) -> torch.Tensor:
        """NT-Xent between the two views' projections (B, D), undoing each view's geometry for PeCLR."""
        o = self.options
        if o.objective == "peclr":
            z1 = canonicalise_projections(z1, views[0][1], views[0][2])
            z2 = canonicalise_projections(z2, views[1][1], views[1][2])
        return self.loss(z1, z2)

    def training_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        images = batch["image"]
        views = (self.make_view(images), self.make_view(images))
        projections = model(torch.cat([views[0][0], views[1][0]])).float()
        z1, z2 = projections.chunk(2)
        loss = self.contrastive_loss(z1, z2, views)
        with torch.no_grad():
            agreement = (F.normalize(z1, dim=1) * F.normalize(z2, dim=1)).sum(1).mean()
        return {"loss": loss, "positive_cosine": agreement}

    def evaluate(self, model: nn.Module, batches: Iterable[Any]) -> dict[str, float]:
        return {}


# -------------------------------------------------------------------------------------------- fine-tuning
def load_pretrained_encoder(encoder: ResNet, path: Path, options: Options) -> Path:
    """Copy the encoder weights of a peclr pre-training checkpoint (or run folder) into ``encoder``."""
    from distill3d.engine.checkpoint import load_checkpoint, resolve_checkpoint

    checkpoint = resolve_checkpoint(path, prefer="last.pt")
    state = load_checkpoint(checkpoint)
    config = state.get("config", {})
    saved = config.get("options", {})
    if config.get("method") != "peclr" or saved.get("stage", "pretrain") != "pretrain":
        raise Distill3dError(f"{checkpoint}: not a peclr pre-training checkpoint (method: peclr, stage: pretrain)")
    defaults = Options()
    mismatched = [k for k in ARCHITECTURE_KEYS
                  if k != "image_size" and saved.get(k, getattr(defaults, k)) != getattr(options, k)]
    if mismatched:
        details = ", ".join(f"{k}: {saved.get(k, getattr(defaults, k))} vs {getattr(options, k)}" for k in mismatched)
        raise Distill3dError(f"{checkpoint}: encoder architecture differs from this run's options ({details})")
    weights = {k[len("encoder."):]: v for k, v in state["model"].items() if k.startswith("encoder.")}
    encoder.load_state_dict(weights)
    return checkpoint


class FinetuneTask(TaskBase):
    """Supervised 2.5D hand pose: ``L = L1(uv) + α·L1(z_rel)`` (+ β·heat-map CE for the heat-map head) on an
    (optionally pre-trained) encoder."""

    def __init__(self, options: Options, seed: int) -> None:
        self.options, self.seed = options, seed
        self.data = _HandData(options, seed)
        self.appearance = appearance_augmentation(0.5, blur_p=0.2, grayscale_p=0.1)

    def build_model(self) -> Hand25DNet | Hand25DHeatmapNet:
        o = self.options
        encoder = build_encoder(o)
        if o.head == "heatmap":
            return Hand25DHeatmapNet(encoder, o.image_size, freeze_encoder=o.freeze_encoder,
                                     from_stem=o.heatmap_from_stem)
        return Hand25DNet(encoder, o.image_size, freeze_encoder=o.freeze_encoder)

    def warm_start(self, model: nn.Module) -> None:
        """Generic warm start, then the PeCLR / SimCLR pre-training checkpoint's encoder (when given)."""
        warm_start_encoder(model.encoder, self.options)
        if self.options.pretrained_checkpoint is not None:
            load_pretrained_encoder(model.encoder, self.options.pretrained_checkpoint, self.options)

    def train_set(self) -> Dataset:
        return self.data.labelled()

    def val_set(self) -> Dataset:
        return self.data.val()

    def test_sets(self) -> dict[str, Dataset]:
        return self.data.test()

    def augment(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(images, uv (B, 21, 2), K (B, 3, 3)) after a random similarity of the crop; ``K' = M·K`` keeps the 3D
        joints (and so z_rel) unchanged."""
        o = self.options
        images, uv, K = batch["image"], batch["joints_uv"], batch["K"]
        if not o.finetune_augment:
            return images, uv, K
        params = sample_geometric_params(images.shape[0], images.shape[-1], o.finetune_max_angle_deg,
                                         o.finetune_max_jitter, o.scale_range)
        matrix = params.matrix.to(images.device)
        images = self.appearance(warp_images(images, matrix).float()).clamp(0, 1)
        return images, transform_points(uv, matrix), matrix.to(K.dtype) @ K

    def training_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        images, uv, K = self.augment(batch)
        _, z_rel = xyz_to_hand25d(batch["joints_xyz"], K, batch["scale"])
        net = _unwrap(model)
        if isinstance(net, Hand25DHeatmapNet):
            uv_pred, z_pred, probabilities = model(normalise_images(images), return_heatmaps=True)
            targets = gaussian_heatmap_targets(uv, probabilities.shape[-2:], *net.heatmap_geometry(), 1.0)
            heatmap_ce = -(targets * probabilities.clamp_min(1e-8).log()).flatten(2).sum(-1).mean()
        else:
            uv_pred, z_pred = model(normalise_images(images))
            heatmap_ce = torch.zeros((), device=images.device)
        uv_l1 = F.l1_loss(uv_pred, uv)
        z_l1 = F.l1_loss(z_pred, z_rel)
        loss = uv_l1 + self.options.z_weight * z_l1 + self.options.heatmap_weight * heatmap_ce
        return {"loss": loss, "uv_l1_px": uv_l1, "z_rel_l1": z_l1, "heatmap_ce": heatmap_ce}

    def evaluate(self, model: nn.Module, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
        result, uv_error = evaluate_hand_pose(model, batches, self.options.root)
        return {"pa_epe_mm": 1000 * result.pa_epe_mean, "epe_mm": 1000 * result.epe_mean, "auc": result.auc,
                "pa_auc": result.pa_auc, "uv_px": uv_error}


@torch.no_grad()
def predict_xyz(model: nn.Module, batch: dict[str, torch.Tensor],
                root: Literal["bones", "closed_form"] = "bones") -> tuple[torch.Tensor, torch.Tensor]:
    """3D joints (B, 21, 3) m and uv (B, 21, 2) px of a batch with image, K and scale (the FreiHAND protocol
    gives K and the reference bone length at test time).

    ``root``: ``bones`` fits the scale-normalised root depth to all 20 bones against the mean hand's bone
    proportions (:func:`~distill3d.geometry.hand25d.root_depth_from_bones`, the root refinement that coarse 2D
    needs); ``closed_form`` is Iqbal's one-bone solution, clamped to :data:`ROOT_DEPTH_RANGE`.
    """
    uv, z_rel = _unwrap(model)(normalise_images(batch["image"]))
    uv, z_rel = uv.double(), z_rel.double()
    K, scale = batch["K"].double(), batch["scale"].double()
    if root == "bones":
        depth = root_depth_from_bones(uv, z_rel, K, MEAN_BONE_UNITS, PARENTS, ROOT_DEPTH_RANGE)
        xyz = hand25d_to_xyz(uv, z_rel, K, scale, root_depth=depth)
    else:
        xyz = hand25d_to_xyz(uv, z_rel, K, scale, root_depth_range=ROOT_DEPTH_RANGE)
    return xyz, uv.float()


def evaluate_hand_pose(model: nn.Module, batches: Iterable[dict[str, Any]],
                       root: Literal["bones", "closed_form"] = "bones") -> tuple[HandPoseResult, float]:
    """FreiHAND metrics (:func:`distill3d.metrics.hand.hand_pose_metrics`) and the mean 2D error (px)."""
    predictions, truths, uv_errors = [], [], []
    for batch in batches:
        xyz, uv = predict_xyz(model, batch, root)
        predictions.append(xyz)
        truths.append(batch["joints_xyz"].double())
        uv_errors.append((uv.float() - batch["joints_uv"]).norm(dim=-1).flatten())
    result = hand_pose_metrics(torch.cat(predictions), torch.cat(truths))
    return result, float(torch.cat(uv_errors).mean())


def build_task(options: Options, seed: int) -> PretrainTask | FinetuneTask:
    return PretrainTask(options, seed) if options.stage == "pretrain" else FinetuneTask(options, seed)
