"""``options:`` of an skd_wm3d run, validated into a typed object (errors name the bad key)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from distill3d.data.worlds.difficulty import Difficulty


class LossWeights(BaseModel):
    """Weights of the loss terms (each branch; the distillation term acts on the MDN only)."""

    model_config = ConfigDict(extra="forbid")

    heatmap: float = Field(1.0, ge=0, allow_inf_nan=False)
    size2d: float = Field(0.1, ge=0, allow_inf_nan=False, description="L1 of the 2D box size, input pixels")
    offset2d: float = Field(1.0, ge=0, allow_inf_nan=False)
    depth: float = Field(1.0, ge=0, allow_inf_nan=False, description="Laplacian L1 of the centre depth")
    projection: float = Field(1.0, ge=0, allow_inf_nan=False, description="weak: projected 3D box vs 2D box")
    alignment: float = Field(0.0, ge=0, allow_inf_nan=False,
                             description="weak: depth-map points vs box footprint (off: on the road world's validation "
                                         "split it lowered Car AP_BEV@0.5 from 19 to 8-12)")
    orientation_cue: float = Field(1.0, ge=0, allow_inf_nan=False,
                                   description="weak: observation angle vs the depth estimate's rectangle fit "
                                               "(losses.depth_orientation; options.orientation_cue_branches; on the "
                                               "road world's val split it lifted the full method's Car AP_BEV@0.5 "
                                               "from 24.8 to 40.8, seed 0)")
    dimension_prior: float = Field(1.0, ge=0, allow_inf_nan=False, description="weak: dimensions vs class mean")
    offset3d: float = Field(1.0, ge=0, allow_inf_nan=False, description="full supervision only")
    dimensions: float = Field(1.0, ge=0, allow_inf_nan=False, description="full supervision only")
    orientation: float = Field(1.0, ge=0, allow_inf_nan=False, description="full supervision only")
    distillation: float = Field(0.1, ge=0, allow_inf_nan=False,
                                description="MDN ← DSN at the objects' cells (at 1 the transfer's gradient through "
                                            "the shared trunk cut the MDN's val AP_2D@0.7 from 61 to 43; 0.1 keeps "
                                            "it, road world)")


class Options(BaseModel):
    """``options:`` of an skd_wm3d run.

    The four switches give the benchmark's arms: ``supervision: full`` (3D labels; the ceiling) or ``weak``
    (2D boxes + a depth estimate only); ``self_distillation`` adds the DSN and the MDN ← DSN transfer;
    ``uncertainty`` weights that transfer by the DSN's depth uncertainty; ``modulation`` keeps the branches'
    learning paces in step (gradient-targeted transfer modulation)."""

    model_config = ConfigDict(extra="forbid")

    dataset: Literal["road", "kitti"] = Field("road", description="road world, or KITTI from a local folder")
    kitti_root: Path | None = Field(None, description="KITTI object folder (training/{image_2,calib,label_2}, "
                                                      "ImageSets/{train,val}.txt)")
    depth_root: Path | None = Field(None, description="KITTI: folder of <id>.png 16-bit depth estimates "
                                                      "(value / 256 = metres, 0 = invalid) at the image size")
    kitti_val_from_train: int = Field(300, gt=0, description="KITTI: last training ids held out for model "
                                                             "selection (the val split is the test split)")
    image_size: tuple[int, int] = Field((96, 320), description="(H, W) of the network input")
    train_size: int = Field(3712, gt=0, description="road world: training frames")
    val_size: int = Field(500, gt=0, description="road world: validation frames (model selection)")
    test_size: int = Field(1000, gt=0, description="road world: test frames")
    data_seed: int = Field(0, ge=0, description="road world: seed of the frames (fixed across training seeds)")
    difficulty: Difficulty = Field(
        "standard", description="road world preset (distill3d.data.worlds.road.ROAD_PRESETS): objects within "
                                "20 / 25 / 60 m")
    cache: bool = Field(True, description="render each road split once into the disk cache")
    classes: tuple[str, ...] = Field(("Car", "Pedestrian", "Cyclist"), description="detected classes")

    backbone: Literal["resnet18", "resnet34"] = "resnet18"
    backbone_width: int = Field(32, gt=0)
    pretrained_backbone: str | None = Field(
        "builtin", description="warm start of the image encoder: 'builtin' or a safetensors file; null = random")
    num_bins: int = Field(12, gt=1, description="orientation bins of the observation angle")
    head_channels: int = Field(64, gt=0, description="channels of the heads' 3×3 convolution")
    shared_trunk: bool = Field(True, description="one 3×3 convolution shared by all heads (CPU-sized; false = "
                                                 "monodle's separate branch per output, ~7× the head's compute)")
    dimension_bound: float | None = Field(0.3, gt=0, allow_inf_nan=False,
                                          description="sizes stay within exp(±bound) of the class mean (null: free)")
    initial_depth: float = Field(20.0, gt=0, allow_inf_nan=False, description="depth (m) the heads start at")

    supervision: Literal["full", "weak"] = "weak"
    self_distillation: bool = Field(True, description="train the DSN jointly and transfer DSN → MDN")
    uncertainty: bool = Field(True, description="weight the transfer by the DSN's depth uncertainty "
                                                "(only with self_distillation)")
    modulation: bool = Field(True, description="gradient-targeted transfer modulation (only with self_distillation)")
    shared_encoder: bool = Field(False, description="DSN and MDN share the image encoder")
    transfer_attributes: tuple[Literal["depth", "offset3d", "dimensions", "orientation", "heatmap"], ...] = Field(
        ("depth", "offset3d", "dimensions", "orientation"), min_length=1,
        description="what the MDN learns from the DSN: box attributes at the objects' cells, and 'heatmap': the "
                    "DSN's whole heat map (dense binary KL)")
    distillation_margin: float = Field(0.0, ge=0, allow_inf_nan=False, description="soft margin m of the transfer")
    modulation_alpha: float = Field(1.0, gt=0, allow_inf_nan=False, description="α of the modulation coefficient")
    depth_quantile: float = Field(0.5, gt=0, lt=1, allow_inf_nan=False,
                                  description="weak depth target: quantile of the depth estimate inside the box")
    depth_offset: Literal["half_width", "footprint"] = Field(
        "footprint", description="weak depth target = box surface depth + half the predicted footprint's extent "
                                 "along the ray (0.25·(l·|sin α| + w·|cos α|), this branch's box, detached), or + half "
                                 "the class-mean width (the weak MDN's val AP_BEV@0.5 24.4 / 28.7 vs 23.1 / 15.5, "
                                 "seeds 0 / 1, road world)")
    exclude_nearer_boxes: bool = Field(True, description="weak cues ignore depth samples inside nearer objects' "
                                                         "2D boxes (likely occluders)")
    alignment_branches: tuple[Literal["mdn", "dsn"], ...] = Field(
        ("mdn", "dsn"), description="branches that the point-to-box alignment (weights.alignment) trains; ['dsn']: "
                                    "only the depth-guided branch, whose input shows the points")
    orientation_cue_branches: tuple[Literal["mdn", "dsn"], ...] = Field(
        ("dsn",), description="branches that the depth orientation cue (weights.orientation_cue) trains: the "
                              "depth-aware head of the DSN, whose input shows the depth it is read from ([mdn, dsn]: "
                              "val AP_BEV@0.5 39.6 vs 40.8, road world, seed 0)")
    alignment_visible_edges: bool = Field(False, description="point-to-box alignment measures to the footprint "
                                                            "edges facing the camera only")
    box_shrink: float = Field(0.1, ge=0, lt=0.5, allow_inf_nan=False,
                              description="share of the 2D box cut from each side before reading depth")
    weights: LossWeights = LossWeights()

    flip: bool = Field(True, description="horizontal flip augmentation (ry → π − ry, principal point mirrored)")
    crop_scale: float | None = Field(None, gt=0, lt=1, allow_inf_nan=False,
                                     description="zoom-in crop augmentation: smallest window (share of the image) "
                                                 "cropped and resized back, the camera updated (null: off). At 0.7 "
                                                 "the full method's road-world val AP_BEV@0.5 fell from 40.8 to 6.8 "
                                                 "(AP_2D unchanged, seed 0) — a zoom makes objects look nearer "
                                                 "without moving them — and to 24.4 with focal_normalised_depth: "
                                                 "the shifted principal point still moves the ground-contact cue")
    focal_normalised_depth: bool = Field(False, description="the depth head predicts the depth at the un-zoomed "
                                                            "input's focal length (KITTI's P2 at image_size), scaled "
                                                            "by each image's f_y: zoomed crops keep their depth")
    crop_probability: float = Field(0.5, ge=0, le=1, allow_inf_nan=False, description="share of images cropped")
    top_k: int = Field(50, gt=0, description="detections kept per image")
    score_threshold: float = Field(0.05, ge=0, lt=1, allow_inf_nan=False)

    @field_validator("kitti_root", "depth_root")
    @classmethod
    def _absolute(cls, path: Path | None) -> Path | None:
        return None if path is None else path.expanduser().resolve()

    @model_validator(mode="after")
    def _check(self) -> Options:
        if self.dataset == "kitti" and (self.kitti_root is None or self.depth_root is None):
            raise ValueError("options.kitti_root and options.depth_root are required with dataset: kitti")
        if any(side % 32 for side in self.image_size):
            raise ValueError(f"options.image_size {self.image_size}: both sides must be multiples of 32")
        return self
