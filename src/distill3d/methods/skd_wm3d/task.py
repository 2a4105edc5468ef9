"""The SKD-WM3D task: losses of the two branches, the DSN → MDN transfer, its modulation, KITTI evaluation."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from distill3d.data.kitti_detection import evaluation_frames, write_kitti_results
from distill3d.data.kitti_io import read_split_file, write_label_file
from distill3d.data.worlds.road import KITTI_IMAGE_SIZE, KITTI_P2, MEAN_DIMENSIONS
from distill3d.engine.task import TaskBase
from distill3d.errors import Distill3dError
from distill3d.geometry import mono3d as geometry
from distill3d.geometry.boxes3d import rotation_y_to_alpha
from distill3d.losses import depth_orientation
from distill3d.losses import mono3d as losses
from distill3d.methods.skd_wm3d.data import (
    EVAL_KEYS,
    FULL_TRAIN_KEYS,
    RAGGED,
    WEAK_TRAIN_KEYS,
    Objects,
    crop_batch,
    flatten_objects,
    flip_batch,
    input_to_kitti_pixels,
    kitti_split,
    road_split,
)
from distill3d.methods.skd_wm3d.options import Options
from distill3d.metrics.kitti import FrameAnnotations, evaluate_kitti
from distill3d.models.mono3d import DepthFusedMono3DNet, Mono3DNet, SelfDistilledMono3D
from distill3d.models.resnet import ResNet, load_encoder_weights
from distill3d.weights import resolve_encoder_weights

Branch = Literal["mdn", "dsn"]
"""Which branch detects: the MDN (image only, inference) or the DSN (image + depth estimate, diagnosis)."""

STRIDE = 4
SKY_DEPTH = 80.0
"""The road world's depth estimator writes this into sky / invalid pixels; depth samples ≥ it are ignored."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalise(images: torch.Tensor) -> torch.Tensor:
    mean = images.new_tensor(IMAGENET_MEAN)[None, :, None, None]
    std = images.new_tensor(IMAGENET_STD)[None, :, None, None]
    return (images - mean) / std


class SKDWM3DTask(TaskBase):
    """Weakly supervised monocular 3D detection with depth-guided self-knowledge distillation (module docstring
    of :mod:`distill3d.methods.skd_wm3d`)."""

    def __init__(self, options: Options, seed: int) -> None:
        self.options, self.seed = options, seed
        self.class_means = torch.tensor([MEAN_DIMENSIONS[name] for name in options.classes])
        self._splits: dict[str, Dataset] = {}
        self._last_task_losses: tuple[float, float] | None = None

    # ------------------------------------------------------------------ model
    def _encoder(self) -> ResNet:
        return ResNet(self.options.backbone, 0, self.options.backbone_width)

    def build_model(self) -> nn.Module:
        o = self.options
        heads = {"head_channels": o.head_channels, "initial_depth": o.initial_depth, "shared_trunk": o.shared_trunk,
                 "dimension_bound": o.dimension_bound}
        mdn = Mono3DNet(self._encoder(), len(o.classes), o.num_bins, **heads)
        dsn = DepthFusedMono3DNet(self._encoder(), len(o.classes), o.num_bins, **heads) if o.self_distillation else None
        return SelfDistilledMono3D(mdn, dsn, shared_encoder=o.shared_encoder)

    def warm_start(self, model: nn.Module) -> None:
        o = self.options
        if o.pretrained_backbone is None:
            return
        path = resolve_encoder_weights(o.pretrained_backbone, o.backbone, o.backbone_width)
        for branch in (model.mdn, model.dsn):
            if branch is not None:
                load_encoder_weights(branch.encoder, path)

    @property
    def depth_focal(self) -> float | None:
        """The focal length (px, vertical) at which the depth head predicts depth with
        ``options.focal_normalised_depth``: KITTI's P2 f_y rescaled to the input rows (the road world's camera; real
        KITTI frames differ by < 1 %); None: the head predicts metres directly."""
        if not self.options.focal_normalised_depth:
            return None
        return float(KITTI_P2[1, 1]) * self.options.image_size[0] / KITTI_IMAGE_SIZE[0]

    def setup(self, device: torch.device, dist: Any) -> None:
        self.class_means = self.class_means.to(device)

    # ------------------------------------------------------------------ data
    def _split(self, split: str, size: int, keys: tuple[str, ...]) -> Dataset:
        """A split with only ``keys``: road world ``train / val / test``; KITTI ``train`` = ImageSets/train.txt
        minus its last ``kitti_val_from_train`` ids (which are ``val``, for model selection), ``test`` =
        ImageSets/val.txt (the usual 3,712 / 3,769 protocol; never used for selection)."""
        if split not in self._splits:
            o = self.options
            if o.dataset == "road":
                self._splits[split] = road_split(split, size, o.data_seed, o.image_size, keys, o.cache,
                                                   o.difficulty)
            else:
                train = read_split_file(o.kitti_root / "ImageSets" / "train.txt")
                hold_out = min(o.kitti_val_from_train, len(train) - 1)
                ids = {"train": train[:-hold_out], "val": train[-hold_out:],
                       "test": read_split_file(o.kitti_root / "ImageSets" / "val.txt")}[split]
                self._splits[split] = kitti_split(o.kitti_root, ids, o.depth_root, o.image_size, keys,
                                                  evaluation=split != "train", cache=o.cache)
        return self._splits[split]

    def train_set(self) -> Dataset:
        keys = FULL_TRAIN_KEYS if self.options.supervision == "full" else WEAK_TRAIN_KEYS
        return self._split("train", self.options.train_size, keys)

    def val_set(self) -> Dataset:
        return self._split("val", self.options.val_size, EVAL_KEYS)

    def test_sets(self) -> dict[str, Dataset]:
        return {"test": self._split("test", self.options.test_size, EVAL_KEYS)}

    def collate(self, samples: list[Any]) -> Any:
        from distill3d.data.cache import collate_ragged

        return collate_ragged(samples, RAGGED)

    # ------------------------------------------------------------------ training
    def _decode_boxes(self, outputs: dict[str, torch.Tensor], objects: Objects, cells: torch.Tensor,
                      P: torch.Tensor, width: int) -> dict[str, torch.Tensor]:
        """Differentiable 3D boxes of the objects from one branch's maps at their cells: centre (N, 3), dims
        (N, 3), ry (N,), depth (N,), log_sigma (N,), and the raw attributes that the transfer compares."""
        at = {name: geometry.gather_at(value, objects.batch_index, cells) for name, value in outputs.items()}
        cell_xy = torch.stack([cells % width, torch.div(cells, width, rounding_mode="floor")], dim=1).float()
        uv = (cell_xy + at["offset3d"]) * STRIDE
        depth = geometry.metric_depth(at["depth"][:, 0], P[objects.batch_index, 1, 1], self.depth_focal)
        dims = geometry.dimensions_from_log_ratio(at["dimensions"], self.class_means[objects.classes])
        alpha = geometry.soft_bins_to_alpha(at["orientation"][:, : self.options.num_bins],
                                            at["orientation"][:, self.options.num_bins :])
        centre = geometry.lift_centre(uv, depth, P[objects.batch_index])
        ry = alpha + torch.atan2(centre[:, 0], centre[:, 2])
        return {"centre": centre, "dims": dims, "ry": ry, "alpha": alpha, "depth": depth,
                "log_sigma": at["depth_log_sigma"][:, 0], "at": at, "cell_xy": cell_xy}

    def _branch_losses(self, outputs: dict[str, torch.Tensor], objects: Objects, targets: dict[str, torch.Tensor],
                       batch: dict[str, Any], weak: dict[str, torch.Tensor] | None, branch: Branch = "mdn"
                       ) -> tuple[torch.Tensor, dict]:
        w = self.options.weights
        width = outputs["heatmap"].shape[-1]
        cells = targets["cell_index"]
        decoded = self._decode_boxes(outputs, objects, cells, batch["P2_image"], width)
        at = decoded["at"]
        terms = {"heatmap": losses.focal_heatmap_loss(outputs["heatmap"], targets["heatmap"])}
        if len(cells):
            terms["size2d"] = (at["size2d"] - targets["size2d"]).abs().mean()
            terms["offset2d"] = (at["offset2d"] - targets["offset2d"]).abs().mean()
        if objects.boxes3d is not None:  # full supervision: the ceiling
            terms.update(self._full_terms(decoded, objects, batch))
        elif weak is not None and len(cells):
            height, width_px = batch["image"].shape[-2:]
            # the box centre lies behind the visible surface [reconstruction]: by half the footprint's extent along
            # the ray of this branch's own box (detached), or by half the class-mean width
            if self.options.depth_offset == "footprint":
                behind = geometry.centre_behind_surface(decoded["alpha"].detach(), decoded["dims"].detach())
            else:
                behind = 0.5 * self.class_means[objects.classes, 1]
            target = weak["surface"] + behind
            valid = torch.isfinite(target)
            if bool(valid.any()):
                terms["depth"] = losses.laplacian_l1(decoded["depth"][valid], target[valid],
                                                     decoded["log_sigma"][valid])
            terms["projection"] = losses.projection_consistency_loss(
                decoded["centre"], decoded["dims"], decoded["ry"], batch["P2_image"][objects.batch_index],
                objects.boxes2d, (width_px, height))
            if "points" in weak and branch in self.options.alignment_branches:
                terms["alignment"] = losses.point_box_alignment_loss(
                    decoded["centre"], decoded["dims"], decoded["ry"], weak["points"], weak["valid"],
                    visible_edges_only=self.options.alignment_visible_edges)
            if "alpha" in weak and branch in self.options.orientation_cue_branches:
                cue = weak["alpha_valid"]
                terms["orientation_cue"] = depth_orientation.axial_angle_loss(decoded["alpha"][cue], weak["alpha"][cue])
            terms["dimension_prior"] = losses.dimension_prior_loss(at["dimensions"])
        total = sum(getattr(w, name) * value for name, value in terms.items())
        return total, {"terms": terms, "decoded": decoded}

    def _full_terms(self, decoded: dict, objects: Objects, batch: dict[str, Any]) -> dict:
        """3D-label losses (the supervised ceiling): projected-centre offset, depth, dimensions, multibin angle."""
        boxes = objects.boxes3d
        centre = geometry.box_centre(boxes)
        uv, _ = geometry.project_centre(centre, batch["P2_image"][objects.batch_index])
        at = decoded["at"]
        bins, residual = geometry.alpha_to_bins(rotation_y_to_alpha(boxes[:, 6], boxes[:, :3]), self.options.num_bins)
        logits = at["orientation"][:, : self.options.num_bins]
        residuals = at["orientation"][:, self.options.num_bins :].gather(1, bins[:, None])[:, 0]
        log_ratio = geometry.log_ratio_from_dimensions(boxes[:, 3:6], self.class_means[objects.classes])
        offset3d = uv / STRIDE - decoded["cell_xy"]
        return {"offset3d": (at["offset3d"] - offset3d).abs().mean(),
                "depth": losses.laplacian_l1(decoded["depth"], centre[:, 2], decoded["log_sigma"]),
                "dimensions": (at["dimensions"] - log_ratio).abs().mean(),
                "orientation": nn.functional.cross_entropy(logits, bins) + (residuals - residual).abs().mean()}

    def _weak_cues(self, batch: dict[str, Any], objects: Objects) -> dict[str, torch.Tensor]:
        """Per-object cues from the depth ESTIMATE: robust depth of the visible surface in each box (N,) m; with
        the orientation cue on, the observation angle of the depth points' rectangle fit (N,) and its validity; with
        the alignment on, back-projected points."""
        o = self.options
        depth_map = batch["depth_estimate"]
        surface = losses.box_depth_target(depth_map, objects.boxes2d, objects.batch_index, o.depth_quantile,
                                          o.box_shrink, max_depth=SKY_DEPTH,
                                          exclude_nearer_boxes=o.exclude_nearer_boxes)
        cues = {"surface": surface}
        branches = {"mdn", "dsn"} if o.self_distillation else {"mdn"}
        if o.weights.orientation_cue > 0 and branches & set(o.orientation_cue_branches):
            cues["alpha"], cues["alpha_valid"] = depth_orientation.depth_orientation_cue(
                depth_map, objects.boxes2d, objects.batch_index, batch["K"], batch["P2_image"][objects.batch_index],
                self.class_means[objects.classes], surface, (batch["image"].shape[-1], batch["image"].shape[-2]),
                max_depth=SKY_DEPTH, exclude_nearer_boxes=o.exclude_nearer_boxes)
        if o.weights.alignment == 0:
            return cues
        points, valid = losses.surface_points(depth_map, objects.boxes2d, objects.batch_index, batch["K"],
                                              max_depth=SKY_DEPTH, exclude_nearer_boxes=o.exclude_nearer_boxes)
        # camera-2 points → rectified label frame
        offset = torch.linalg.solve(batch["P2_image"][objects.batch_index, :, :3],
                                    batch["P2_image"][objects.batch_index, :, 3:])[..., 0]
        return {**cues, "points": points - offset[:, None, :], "valid": valid}

    def training_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        o = self.options
        images = batch["image"]
        if o.flip:
            batch = flip_batch(batch, torch.rand(len(images), device=images.device) < 0.5)
        if o.crop_scale is not None:
            batch = self._random_crop(batch)
        objects = flatten_objects(batch, o.image_size, o.classes)
        height, width = images.shape[-2] // STRIDE, images.shape[-1] // STRIDE
        targets = geometry.heatmap_targets(objects.boxes2d, objects.classes, objects.batch_index, len(images),
                                           len(o.classes), (height, width), STRIDE)
        weak = self._weak_cues(batch, objects) if o.supervision == "weak" and len(objects.classes) else None
        depth_input = batch["depth_estimate"][:, None] if o.self_distillation else None
        outputs = {branch: {name: value.float() for name, value in maps.items()}
                   for branch, maps in model(normalise(batch["image"]), depth_input).items()}
        mdn_loss, mdn = self._branch_losses(outputs["mdn"], objects, targets, batch, weak)
        logged = {f"mdn_{k}": v.detach() for k, v in mdn["terms"].items()}
        loss = mdn_loss
        if o.self_distillation:
            dsn_loss, dsn = self._branch_losses(outputs["dsn"], objects, targets, batch, weak, "dsn")
            logged.update({f"dsn_{k}": v.detach() for k, v in dsn["terms"].items()})
            transfer = self._transfer(mdn["decoded"], dsn["decoded"]) if len(objects.classes) else mdn_loss * 0
            if "heatmap" in o.transfer_attributes:
                transfer = transfer + losses.heatmap_distillation_loss(outputs["mdn"]["heatmap"],
                                                                       outputs["dsn"]["heatmap"], len(objects.classes))
            logged["transfer"] = transfer.detach()
            loss = loss + dsn_loss + o.weights.distillation * transfer
            self._last_task_losses = (float(mdn_loss.detach()), float(dsn_loss.detach()))
        return {"loss": loss, "mdn_loss": mdn_loss.detach(), **logged}

    def _random_crop(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Zoom a random ``crop_probability`` share of the images into a window of ``crop_scale``–1 of their size
        at a random place (:func:`~distill3d.methods.skd_wm3d.data.crop_batch`; camera updated)."""
        o = self.options
        images = batch["image"]
        count, height, width = len(images), images.shape[-2], images.shape[-1]
        chosen = torch.rand(count, device=images.device) < o.crop_probability
        scale = torch.where(chosen, o.crop_scale + (1 - o.crop_scale) * torch.rand(count, device=images.device),
                            torch.ones(count, device=images.device))
        room = (1 - scale)[:, None] * torch.tensor([width, height], dtype=scale.dtype, device=images.device)
        return crop_batch(batch, scale, torch.rand(count, 2, device=images.device) * room)

    def _transfer(self, student: dict, teacher: dict) -> torch.Tensor:
        """MDN ← DSN at the objects' cells (both branches see the same image, so the same cell is the same
        object), for the box ``transfer_attributes`` (the dense ``heatmap`` one is added by the caller): depth
        with the DSN's Laplacian uncertainty (when ``uncertainty``); 3D-centre offset, dimensions (log ratio) and
        the observation angle as (sin, cos) as one plain term; each with the soft margin."""
        o = self.options
        m = o.distillation_margin
        chosen = set(o.transfer_attributes)
        total = student["depth"].new_zeros(())
        if "depth" in chosen:
            sigma = teacher["log_sigma"][:, None] if o.uncertainty else None
            total = total + losses.uncertainty_distillation_loss(student["depth"][:, None],
                                                                 teacher["depth"][:, None], sigma, m)

        def attributes(d: dict) -> list[torch.Tensor]:
            found = {"offset3d": d["at"]["offset3d"], "dimensions": d["at"]["dimensions"],
                     "orientation": torch.stack([torch.sin(d["alpha"]), torch.cos(d["alpha"])], dim=1)}
            return [found[name] for name in ("offset3d", "dimensions", "orientation") if name in chosen]

        if chosen - {"depth", "heatmap"}:
            total = total + losses.uncertainty_distillation_loss(torch.cat(attributes(student), dim=1),
                                                                 torch.cat(attributes(teacher), dim=1), None, m)
        return total

    def before_optimizer_step(self, model: nn.Module, optimizer: torch.optim.Optimizer, step: int) -> None:
        """Gradient-targeted transfer modulation: slow the branch whose task loss falls faster."""
        o = self.options
        if not (o.self_distillation and o.modulation) or self._last_task_losses is None:
            return
        mdn_loss, dsn_loss = self._last_task_losses
        k_dsn, k_mdn = losses.transfer_modulation_coefficients(torch.tensor(mdn_loss), torch.tensor(dsn_loss),
                                                               o.modulation_alpha)
        module = getattr(model, "module", model)
        losses.scale_gradients(module.dsn_parameters(), float(k_dsn))
        losses.scale_gradients(module.mdn_parameters(), float(k_mdn))

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def predict(self, model: nn.Module, batch: dict[str, Any], branch: Branch = "mdn") -> list[FrameAnnotations]:
        """Detections of a batch as KITTI records in the original frame's pixels: the MDN's (image only; what
        inference uses), or with ``branch="dsn"`` the DSN's (image + the batch's ``depth_estimate``; diagnosis)."""
        o = self.options
        module = getattr(model, "module", model)
        images = normalise(batch["image"])
        if branch == "mdn":
            maps = module.mdn(images)
        elif getattr(module, "dsn", None) is None or "depth_estimate" not in batch:
            raise Distill3dError("the DSN's detections need a model with the DSN (options.self_distillation: true) "
                                 "and batches that carry depth_estimate")
        else:
            maps = module(images, batch["depth_estimate"][:, None])["dsn"]
        outputs = {name: value.float() for name, value in maps.items()}  # bf16 under autocast
        detections = geometry.decode_detections(outputs, batch["P2_image"], self.class_means, top_k=o.top_k,
                                                depth_focal=self.depth_focal,
                                                stride=STRIDE)
        frames = []
        originals = batch.get("image_size_original")
        for i, found in enumerate(detections):
            keep = found["score"] >= o.score_threshold
            boxes3d = found["boxes3d"][keep].double().cpu().numpy()
            original = None if originals is None else originals[i : i + 1].expand(int(keep.sum()), 2)
            bbox = input_to_kitti_pixels(found["box2d"][keep].double(), o.image_size, original).cpu().numpy()
            names = np.asarray([o.classes[int(c)] for c in found["class"][keep]], dtype=str)
            frames.append(FrameAnnotations.from_boxes3d(names, boxes3d, bbox, found["score"][keep].double()
                                                        .cpu().numpy()))
        return frames

    def write_kitti_predictions(self, model: nn.Module, split: str, out_dir: str | Path,
                                batch_size: int = 32) -> tuple[Path, Path]:
        """The MDN's detections on ``split`` (``val`` or ``test``) as KITTI result files ``out_dir/results/<id>.txt``
        and the split's ground truth as label files ``out_dir/label_2/<id>.txt`` (Van / Person_sitting neighbours
        and DontCare included), to be scored by the official evaluation: ``distill3d kitti-eval out_dir/label_2
        out_dir/results``. Ids: KITTI's frame ids, or the frame's position (``000000`` …) in a road-world split.
        Returns ``(label_dir, result_dir)``."""
        from torch.utils.data import DataLoader

        dataset = self.val_set() if split == "val" else self.test_sets()[split]
        ids = list(getattr(dataset, "ids", None) or [f"{i:06d}" for i in range(len(dataset))])
        out_dir = Path(out_dir)
        label_dir, result_dir = out_dir / "label_2", out_dir / "results"
        gt, dt = [], []
        for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=self.collate):
            gt.extend(evaluation_frames(batch))
            dt.extend(self.predict(model, batch))
        write_kitti_results(dt, ids, result_dir)
        for frame, frame_id in zip(gt, ids, strict=True):
            write_label_file(label_dir / f"{frame_id}.txt", frame, with_score=False)
        return label_dir, result_dir

    def evaluate(self, model: nn.Module, batches: Iterable[dict[str, Any]], branch: Branch = "mdn"
                 ) -> dict[str, float]:
        """KITTI AP (R40 and R11, IoU 0.7 / 0.5, BEV and 3D) of the MDN (or, with ``branch="dsn"``, the DSN: see
        :meth:`predict`) on one split; headline keys ``ap_bev_r40_moderate_05`` and ``ap_3d_r40_moderate_05`` for
        the first class."""
        gt, dt = [], []
        for batch in batches:
            gt.extend(evaluation_frames(batch))
            dt.extend(self.predict(model, batch, branch))
        result = evaluate_kitti(gt, dt, classes=self.options.classes, metrics=("bbox", "bev", "3d"))
        metrics = result.to_dict(include_aos=False)
        first = self.options.classes[0]
        summary = {f"ap_{kind.lower()}_r40_moderate_{'07' if setting == 'strict' else '05'}":
                   metrics[f"KITTI/{first}_{kind}_AP40_moderate_{setting}"]
                   for kind in ("BEV", "3D") for setting in ("strict", "loose")}
        return {**summary, **{k.removeprefix("KITTI/"): v for k, v in metrics.items()}}
