"""PointMCD: multi-view cross-modal distillation from an image teacher into point-cloud encoders.

Zhang, Hou, Qian, "PointMCD: Boosting Deep Point Cloud Encoders via Multi-view Cross-modal Distillation for 3D
Shape Recognition", IEEE TMM 2023 (arXiv 2207.03128; official code github.com/keeganhk/PointMCD; METHODS.md §4).
Two stages, each one ``distill3d train`` run:

**Stage 1 — teacher** (``options.stage: teacher``, :mod:`~distill3d.methods.pointmcd.teacher`): a ResNet image
encoder shared by V rendered views of each shape (12 around it for classification) → per-view descriptors t_v
(Linear → BN → ReLU of the pooled features, 512-d) → shape descriptor from ``max_v t_v`` → linear classifier;
``SmoothCE(shape) + SmoothCE(per view)`` (ε = 0.2) on the training split's renders. The teacher always learns the
shape category (the official segmentation and unsupervised teachers are image part segmenters / auto-encoders;
here one classification teacher serves all three student tasks). Model selection on ``val``.

**Knowledge** (:mod:`~distill3d.methods.pointmcd.knowledge`): before the student's first step, the frozen teacher
encodes every training shape once into t (N, V, 512), and the visibility matrices M (N, points, V) are computed;
both are cached on disk under a key that hashes the teacher checkpoint's SHA-256 and the training data. Training
batches of the student then carry points, labels, ``labelled``, ``visibility`` and ``teacher_descriptors`` —
never an image; validation and test batches carry points and labels only.

**Stage 2 — student** (``options.stage: student``): PointNet (paper widths) or DGCNN with 1024-d per-point
features f_i; the visibility-aware feature projection ``ĝ_v = ReLU(BN(W max_i M_iv·f_i))`` (1024 → 512,
:class:`~distill3d.losses.pointmcd.VisibilityAwareProjection`) gives per-view descriptors, and

    L = w · SmoothCE(labelled shapes) + λ · L_MCD,    L_MCD = mean |ĝ − t|      (METHODS.md §4.2–4.3)

with the official weights by default: w = 0.1 (classification, PointNet segmentation; 1.0 DGCNN segmentation),
λ = 1 — the L1 on the descriptors outweighs the task loss tenfold (``task_weight`` / ``distillation_weight``).

* classification: smooth CE of the shape class (ε = 0.2); metrics ``oa`` and ``macc`` (%);
* segmentation: smooth CE of every point's part (category one-hot as input; ε = 0.05 PointNet, 0.2 DGCNN);
  metrics ``instance_miou``, ``class_miou`` and ``point_acc`` (%), parts predicted within the shape's category;
* unsupervised: λ · L_MCD alone; metric ``svm_oa``: a linear SVM (LinearSVC's objective) on the frozen max-pooled
  features of the training split, its C selected on ``val`` (``svm_c``), accuracy on the evaluated split.

``distillation_weight: 0`` is the scratch student (no teacher, no knowledge). ``label_fraction`` < 1 keeps the
labels of that share of the training shapes of every class (the reduced label budget where distillation should
beat scratch); L_MCD uses every shape. Augmentation: anisotropic scaling and translation of the input points
(the visibility rows keep matching). Data: the shapes world (ray-cast renders with their surface depth) or, from a
local copy, ModelNet40 and ShapeNetPart (shaded point-splat renders; visibility by point z-buffer) —
:mod:`~distill3d.methods.pointmcd.data`.

**Deployment** (:mod:`~distill3d.methods.pointmcd.deploy`): ``distill3d predict STUDENT_RUN CLOUD...`` reads
``.txt`` / ``.pts`` / ``.npy`` / ``.off`` / ``.ply`` clouds, resamples and normalises them as the run's training data,
prints the top-3 classes (classification) or the predicted parts (segmentation, the category from
``--option category=NAME`` or the file's folder) and draws the cloud from two views. ``distill3d demo pointmcd``
trains a small teacher, a scratch and a distilled student at 10 % labels (:func:`distill3d.cli.demos.pointmcd_demo`).
"""

from __future__ import annotations

from distill3d.methods.pointmcd.deploy import predict
from distill3d.methods.pointmcd.knowledge import TeacherKnowledge, load_teacher, prepare_knowledge
from distill3d.methods.pointmcd.options import Options
from distill3d.methods.pointmcd.task import PointMCDStudent, PointMCDTask, build_student
from distill3d.methods.pointmcd.teacher import MultiViewTeacher, build_teacher

DESCRIPTION = "PointMCD (Zhang et al. 2023): multi-view image teacher → point-cloud student (PointNet / DGCNN)"


def build_task(options: Options, seed: int) -> PointMCDTask:
    return PointMCDTask(options, seed)


__all__ = [
    "DESCRIPTION",
    "MultiViewTeacher",
    "Options",
    "PointMCDStudent",
    "PointMCDTask",
    "TeacherKnowledge",
    "build_student",
    "build_task",
    "build_teacher",
    "load_teacher",
    "predict",
    "prepare_knowledge",
]
