"""The PointMCD task (both stages): models, splits, losses and evaluation (see the package docstring)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from distill3d.data.cache import MaterializedDataset, default_cache_dir
from distill3d.data.worlds.shapes import ShapesWorld
from distill3d.engine.task import TaskBase
from distill3d.errors import Distill3dError
from distill3d.losses.pointmcd import VisibilityAwareProjection, multi_view_distillation_loss, smooth_cross_entropy
from distill3d.methods.pointmcd.data import (
    DataSpec,
    ServedSplit,
    ShapesViewsDataset,
    ViewRig,
    data_spec,
    labelled_mask,
    materialize,
    point_keys,
    point_source,
    render_shape_views,
    rig_of,
    shapes_categories,
    splat_render,
    splat_transform,
)
from distill3d.methods.pointmcd.knowledge import RenderViews, TeacherKnowledge, prepare_knowledge
from distill3d.methods.pointmcd.options import DEFAULT_SMOOTHING, Options
from distill3d.methods.pointmcd.teacher import MultiViewTeacher, build_teacher
from distill3d.metrics.shapes import (
    mean_class_accuracy,
    overall_accuracy,
    part_segmentation_miou,
    predict_parts_within_category,
)
from distill3d.models.dgcnn import DGCNNClassifier, DGCNNPartSegmenter
from distill3d.models.pointnet import PointNetPaperClassifier, PointNetPartSegmenter
from distill3d.models.resnet import load_encoder_weights
from distill3d.weights import resolve_encoder_weights

#: Width of the students' per-point features (PointNet's last shared layer, DGCNN's embedding): VAFP's input.
POINT_FEATURE_DIM = 1024


class PointMCDStudent(nn.Module):
    """A point-cloud network that also returns its per-point features, and (when distilling) the visibility-aware
    projection (VAFP) that maps them to per-view descriptors.

    ``forward(points (B, N, 3), category (B,) | None, visibility (B, N, V) | None)`` → (logits (B, K) or per-point
    (B, N, parts), point features (B, N, 1024), view descriptors (B, V, D) or None without visibility);
    ``global_features(points, category)`` → max-pooled point features (B, 1024) (the linear-SVM protocol).
    """

    def __init__(self, network: nn.Module, segmentation: bool, projection: VisibilityAwareProjection | None) -> None:
        super().__init__()
        self.network, self.segmentation, self.projection = network, segmentation, projection

    def forward(self, points: torch.Tensor, category: torch.Tensor | None = None,
                visibility: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        if self.segmentation:
            logits, point_features = self.network(points, category, return_point_features=True)
        else:
            logits, point_features = self.network(points, return_point_features=True)
        views = None
        if visibility is not None:
            if self.projection is None:
                raise ValueError("this student has no visibility-aware projection (distillation_weight: 0)")
            views = self.projection(point_features, visibility)
        return logits, point_features, views

    def global_features(self, points: torch.Tensor, category: torch.Tensor | None = None) -> torch.Tensor:
        return self(points, category)[1].amax(dim=1)


def build_student(options: Options, spec: DataSpec) -> PointMCDStudent:
    """The student network of ``options.student`` for ``options.task`` (unsupervised: the classification network,
    whose head is not trained), with VAFP (1024 → ``descriptor_dim``) when it distils."""
    o = options
    dropout = {} if o.dropout is None else {"dropout": o.dropout}
    if o.task == "segmentation":
        num_categories = len(spec.category_names)
        network: nn.Module = (
            PointNetPartSegmenter(spec.num_parts, num_categories, **dropout) if o.student == "pointnet"
            else DGCNNPartSegmenter(spec.num_parts, num_categories, k=o.dgcnn_k, **dropout))
    else:
        network = (PointNetPaperClassifier(spec.num_classes, **dropout) if o.student == "pointnet"
                   else DGCNNClassifier(spec.num_classes, k=o.dgcnn_k, **dropout))
    distills = o.stage == "student" and o.distillation_weight > 0
    projection = VisibilityAwareProjection(POINT_FEATURE_DIM, o.descriptor_dim, o.masking) if distills else None
    return PointMCDStudent(network, o.task == "segmentation", projection)


def fit_linear_svm(features: torch.Tensor, labels: torch.Tensor, c: float, max_iter: int = 100
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One-vs-rest linear SVM with LinearSVC's primal objective (squared hinge, L2 penalty on the weights):
    ``min_{w_k, b_k} ½‖w_k‖² + C Σ_i max(0, 1 − y_ik (w_k·x_i + b_k))²`` with y_ik = ±1 (the bias is not
    penalised), solved by L-BFGS in float64.

    features (N, F), labels (N,) int64 → weights (F, K), biases (K,), classes (K,) (the label values present).
    """
    classes, target = torch.unique(labels, return_inverse=True)
    signs = torch.nn.functional.one_hot(target, len(classes)).double() * 2 - 1  # (N, K)
    x = features.double()
    weights = torch.zeros(x.shape[1], len(classes), dtype=torch.float64, requires_grad=True)
    biases = torch.zeros(len(classes), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weights, biases], lr=1.0, max_iter=max_iter, history_size=20,
                                  tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        hinge = (1 - signs * (x @ weights + biases)).clamp(min=0)
        loss = 0.5 * (weights**2).sum() + c * (hinge**2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(objective)
    return weights.detach(), biases.detach(), classes


def linear_svm_accuracy(train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
                        evaluated: tuple[torch.Tensor, torch.Tensor], c_values: Iterable[float]
                        ) -> tuple[float, float]:
    """Linear-SVM protocol on frozen features: standardise with the training statistics, fit on ``train`` for every
    C, keep the C with the best ``val`` accuracy, return (accuracy on ``evaluated`` in %, that C)."""
    mean, std = train[0].double().mean(0), train[0].double().std(0).clamp_min(1e-6)

    def scaled(features: torch.Tensor) -> torch.Tensor:
        return (features.double() - mean) / std

    best: tuple[float, float, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None
    for c in c_values:
        model = fit_linear_svm(scaled(train[0]), train[1], float(c))
        accuracy = _svm_accuracy(model, scaled(val[0]), val[1])
        if best is None or accuracy > best[0]:
            best = (accuracy, float(c), model)
    assert best is not None
    return _svm_accuracy(best[2], scaled(evaluated[0]), evaluated[1]), best[1]


def _svm_accuracy(model: tuple[torch.Tensor, torch.Tensor, torch.Tensor], features: torch.Tensor,
                  labels: torch.Tensor) -> float:
    weights, biases, classes = model
    predicted = classes[(features @ weights + biases).argmax(1)]
    return 100.0 * overall_accuracy(predicted, labels)


def augment_points(points: torch.Tensor, scale: tuple[float, float], translate: float) -> torch.Tensor:
    """Anisotropic scale U[low, high] per axis and translation U[−a, a] per cloud (the official augmentation);
    the points keep their order, so the visibility rows still match."""
    batch = points.shape[0]
    factors = torch.empty(batch, 1, 3, dtype=points.dtype, device=points.device).uniform_(*scale)
    shift = torch.empty(batch, 1, 3, dtype=points.dtype, device=points.device).uniform_(-translate, translate)
    return points * factors + shift


class PointMCDTask(TaskBase):
    """The engine's :class:`~distill3d.engine.task.Task` for both stages of PointMCD."""

    def __init__(self, options: Options, seed: int) -> None:
        self.options, self.seed = options, seed
        self.data_seed = seed if options.data_seed is None else options.data_seed
        self.distills = options.stage == "student" and options.distillation_weight > 0
        self._device = torch.device("cpu")
        self._spec: DataSpec | None = None
        self._points: dict[str, MaterializedDataset] = {}
        self._views: dict[str, Dataset] = {}
        self._train: ServedSplit | None = None
        self.knowledge: TeacherKnowledge | None = None

    @property
    def spec(self) -> DataSpec:
        if self._spec is None:
            self._spec = data_spec(self.options)
        return self._spec

    @property
    def rig(self) -> ViewRig:
        """The teacher stage's camera rig (a student uses its teacher's, read with the teacher)."""
        return rig_of(self.options)

    # ------------------------------------------------------------------------------------------- model
    def build_model(self) -> nn.Module:
        if self.options.stage == "teacher":
            return build_teacher(self.options, self.spec.num_classes)
        return build_student(self.options, self.spec)

    def warm_start(self, model: nn.Module) -> None:
        """Teacher: load ``options.pretrained_backbone`` into the image encoder (students start from scratch)."""
        o = self.options
        if isinstance(model, MultiViewTeacher) and o.pretrained_backbone is not None:
            load_encoder_weights(model.encoder, resolve_encoder_weights(o.pretrained_backbone, o.backbone,
                                                                        o.backbone_width))

    def setup(self, device: torch.device, dist: Any) -> None:
        """Only records the device: the knowledge is prepared with the training split (:meth:`train_set`), so that
        evaluating a trained student never needs its teacher."""
        self._device = torch.device(device)

    # -------------------------------------------------------------------------------------------- data
    def _cache_dir(self) -> Any:
        return self.options.cache_dir or default_cache_dir()

    def point_split(self, split: str) -> MaterializedDataset:
        """The materialised point clouds of ``split`` (points, normals, category[, part_labels])."""
        if split not in self._points:
            source, description = point_source(self.options, split, self.data_seed)
            self._points[split] = materialize(source, point_keys(self.options), description, self.options)
        return self._points[split]

    def view_split(self, split: str) -> Dataset:
        """Teacher stage: the rig renders (``image`` (V, 3, S, S)) and ``category`` of ``split``."""
        if split not in self._views:
            o, rig = self.options, self.rig
            if o.dataset == "shapes":
                source = ShapesViewsDataset(o, split, self.data_seed, rig)
                _, points_description = point_source(o, split, self.data_seed)
                description = {**points_description, "world": "pointmcd-shapes-views", "rig": rig.description}
                self._views[split] = materialize(source, ("image", "category"), description, o)
            else:  # point splats are rendered per batch from the materialised clouds
                self._views[split] = ServedSplit(self.point_split(split), ("image", "category"),
                                                 transform=splat_transform(rig, o.splat_radius))
        return self._views[split]

    def _label_keys(self) -> tuple[str, ...]:
        return ("points", "category", "part_labels") if self.options.task == "segmentation" else ("points", "category")

    def eval_split(self, split: str) -> ServedSplit:
        """Student evaluation: points and labels only (no images, no visibility)."""
        return ServedSplit(self.point_split(split), self._label_keys())

    def prepare_knowledge(self) -> TeacherKnowledge:
        """The teacher's per-view descriptors and the visibility of the training split: read from the disk cache,
        or computed once with the frozen teacher (on the task's device) and cached
        (:func:`~distill3d.methods.pointmcd.knowledge.prepare_knowledge`)."""
        if self.knowledge is None:
            o = self.options
            assert o.teacher_checkpoint is not None  # Options require it when distilling
            points = self.point_split("train")
            _, description = point_source(o, "train", self.data_seed)
            self.knowledge = prepare_knowledge(
                o.teacher_checkpoint, description, points.tensors["points"], self._knowledge_renderer(points),
                self._device, self._cache_dir() if o.cache else None, o.effective_visibility_tolerance,
                o.splat_radius)
            teacher_dim = self.knowledge.descriptors.shape[-1]
            if teacher_dim != o.descriptor_dim:
                raise Distill3dError(f"options.descriptor_dim is {o.descriptor_dim}, but the teacher's descriptors "
                                     f"have {teacher_dim} dimensions ({o.teacher_checkpoint})")
        return self.knowledge

    def _knowledge_renderer(self, points: MaterializedDataset) -> RenderViews:
        """Renders of training shapes from the teacher's rig: ray-cast surfaces with their depth (shapes world) or
        point splats of the materialised clouds (real data)."""
        o = self.options
        if o.dataset != "shapes":
            def render_splats(index: torch.Tensor, rig: ViewRig) -> tuple[torch.Tensor, torch.Tensor | None]:
                tensors = points.tensors
                return splat_render(tensors["points"][index], tensors["normals"][index], rig, o.splat_radius)[0], None

            return render_splats

        def render_surfaces(index: torch.Tensor, rig: ViewRig) -> tuple[torch.Tensor, torch.Tensor | None]:
            world = ShapesWorld(rig.image_size, o.num_points, list(shapes_categories(o)), self.data_seed,
                                difficulty=o.difficulty)
            return render_shape_views(world, "train", index.tolist(), rig)

        return render_surfaces

    def train_set(self) -> Dataset:
        o = self.options
        if o.stage == "teacher":
            return self.view_split("train")
        if self._train is None:
            base = self.point_split("train")
            extras = {"labelled": labelled_mask(base.tensors["category"], o.label_fraction, self.seed)}
            if self.distills:
                knowledge = self.prepare_knowledge()
                extras.update(visibility=knowledge.visibility, teacher_descriptors=knowledge.descriptors)
            self._train = ServedSplit(base, self._label_keys(), extras)
        return self._train

    def val_set(self) -> Dataset:
        return self.view_split("val") if self.options.stage == "teacher" else self.eval_split("val")

    def test_sets(self) -> dict[str, Dataset]:
        return {"test": self.view_split("test") if self.options.stage == "teacher" else self.eval_split("test")}

    # ---------------------------------------------------------------------------------------- training
    def training_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        if self.options.stage == "teacher":
            return self._teacher_step(model, batch)
        return self._student_step(model, batch)

    def _teacher_smoothing(self) -> float:
        o = self.options
        return o.smoothing if o.smoothing is not None else DEFAULT_SMOOTHING[("classification", o.student)]

    def _teacher_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        o, eps = self.options, self._teacher_smoothing()
        out = model(batch["image"])
        category = batch["category"]
        shape_loss = smooth_cross_entropy(out["logits"].float(), category, eps)
        view_logits = out["view_logits"].float()
        view_loss = smooth_cross_entropy(view_logits, category[:, None].expand(view_logits.shape[:2]), eps)
        accuracy = (out["logits"].argmax(1) == category).float().mean()
        return {"loss": shape_loss + o.view_loss_weight * view_loss, "shape_ce": shape_loss, "view_ce": view_loss,
                "acc": accuracy}

    def _student_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """``task_weight · SmoothCE`` on the labelled shapes of the batch (classification: the shape's class;
        segmentation: every point's part, with the category one-hot as input) ``+ λ · L_MCD`` (every shape)."""
        o = self.options
        points = augment_points(batch["points"], o.scale_augment, o.translate_augment)
        category = batch["category"]
        logits, _, student_views = model(points, category, batch["visibility"] if self.distills else None)
        out: dict[str, torch.Tensor] = {}
        loss = 0.0 * logits.float().sum()  # keeps every head parameter in the graph (DDP), whatever is trained
        if o.task != "unsupervised" and o.effective_task_weight > 0:
            labelled = batch["labelled"]
            target = category if o.task == "classification" else batch["part_labels"]
            supervised = logits.new_zeros((), dtype=torch.float32)  # no labelled shape in the batch: L_MCD alone
            if bool(labelled.any()):
                supervised = smooth_cross_entropy(logits[labelled].float(), target[labelled], o.effective_smoothing)
            loss = loss + o.effective_task_weight * supervised
            out["task"] = supervised
            out["acc"] = (logits.argmax(-1) == target).float().mean()
        if self.distills:
            distillation = multi_view_distillation_loss(student_views.float(), batch["teacher_descriptors"])
            loss = loss + o.distillation_weight * distillation
            out["mcd"] = distillation
        return {"loss": loss, **out}

    # -------------------------------------------------------------------------------------- evaluation
    def evaluate(self, model: nn.Module, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
        o = self.options
        if o.stage == "teacher":
            return self._evaluate_teacher(model, batches)
        if o.task == "classification":
            return self._evaluate_classification(model, batches)
        if o.task == "segmentation":
            return self._evaluate_segmentation(model, batches)
        return self._evaluate_linear_svm(model, batches)

    @staticmethod
    def _classification_metrics(predicted: list[torch.Tensor], truth: list[torch.Tensor]) -> dict[str, float]:
        pred, target = torch.cat(predicted).cpu(), torch.cat(truth).cpu()
        return {"oa": 100.0 * overall_accuracy(pred, target), "macc": 100.0 * mean_class_accuracy(pred, target)}

    def _evaluate_teacher(self, model: nn.Module, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
        predicted, truth = [], []
        for batch in batches:
            predicted.append(model(batch["image"])["logits"].argmax(1))
            truth.append(batch["category"])
        return self._classification_metrics(predicted, truth)

    @staticmethod
    def classification_predictions(model: nn.Module, batches: Iterable[dict[str, Any]]
                                   ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per batch: the classifier's predicted category (B,) and the true one (B,), without gradients."""
        predicted, truth = [], []
        with torch.no_grad():
            for batch in batches:
                predicted.append(model(batch["points"])[0].argmax(1))
                truth.append(batch["category"])
        return predicted, truth

    def _evaluate_classification(self, model: nn.Module, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
        return self._classification_metrics(*self.classification_predictions(model, batches))

    def _evaluate_segmentation(self, model: nn.Module, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
        table = self.spec.category_to_parts
        predicted, truth, categories = [], [], []
        for batch in batches:
            logits = model(batch["points"], batch["category"])[0].float()
            predicted.append(predict_parts_within_category(logits.cpu(), batch["category"].cpu(), table))
            truth.append(batch["part_labels"].cpu())
            categories.append(batch["category"].cpu())
        pred, target = torch.cat(predicted), torch.cat(truth)
        result = part_segmentation_miou(pred, target, torch.cat(categories), table)
        return {"instance_miou": 100.0 * result.instance_miou, "class_miou": 100.0 * result.class_miou,
                "point_acc": 100.0 * float((pred == target).double().mean())}

    def _features(self, model: nn.Module, batches: Iterable[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
        features, labels = [], []
        with torch.no_grad():
            for batch in batches:
                features.append(model.global_features(batch["points"]).float().cpu())
                labels.append(batch["category"].cpu())
        return torch.cat(features), torch.cat(labels)

    def _split_batches(self, split: str, device: torch.device, batch_size: int = 64) -> Iterable[dict[str, Any]]:
        data = self.eval_split(split)
        for start in range(0, len(data), batch_size):
            batch = data.batch(torch.arange(start, min(len(data), start + batch_size)))
            yield {key: value.to(device) for key, value in batch.items()}

    def _evaluate_linear_svm(self, model: nn.Module, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
        """Frozen global features → linear SVM fitted on the training split, C selected on the validation split,
        accuracy on the evaluated split (for the validation split itself: the best validation accuracy)."""
        device = next(model.parameters()).device
        evaluated = self._features(model, batches)
        train = self._features(model, self._split_batches("train", device))
        val = self._features(model, self._split_batches("val", device))
        with torch.autocast(device_type=device.type, enabled=False):
            accuracy, c = linear_svm_accuracy(train, val, evaluated, self.options.svm_c)
        return {"svm_oa": accuracy, "svm_c": c}
