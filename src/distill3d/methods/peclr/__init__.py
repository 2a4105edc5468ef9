"""PeCLR: equivariant contrastive pre-training and fine-tuning for 3D hand pose from monocular RGB.

Spurr, Dahiya et al., "Self-Supervised 3D Hand Pose Estimation from monocular RGB via Contrastive Learning",
ICCV 2021 (official code: dahiyaaneesh/peclr; fine-tuning code never released, rebuilt here from the paper,
its predecessor repository and Iqbal et al. 2018). Two ``distill3d train`` runs:

**Stage 1** (``options.stage: pretrain``): encoder (ResNet, global pool) → projection head
Linear→BN→ReLU→Linear(→128, no bias). Two views per image, each with its own geometric transform (rotation
about the crop centre, crop jitter, zoom; kornia, matrices recorded) and appearance transform (colour jitter,
grayscale, blur; not undone). ``objective: peclr`` reads the normalised projection as 64 points, undoes each
view's translation and rotation on them (:mod:`~distill3d.methods.peclr.equivariance`), re-normalises and
applies NT-Xent (τ = 0.5); ``objective: simclr`` skips the undo. Under DDP the negatives come from all processes
(``all_gather_with_grad``). Optimiser: the engine's Adam, optionally wrapped in LARS (``lars: true``); lr scaled
by √batch in the recipes (:func:`scaled_learning_rate`); warm-up + cosine from ``train.schedule``.

**Stage 2** (``options.stage: finetune``): the encoder (from ``pretrained_checkpoint``, or random for the
supervised-only baseline) + a 2.5D head predicting per joint (u, v) px and z_rel = (Z − Z_root)/s.
``options.head: heatmap`` (default) adds a top-down decoder to stride-2 heat maps with soft-argmax uv and
integral z_rel (:class:`~distill3d.models.hand_pose.Hand25DHeatmapNet`; a deviation from the paper that makes
64 px crops learnable: global regression learns too slowly) with ``L = L1(uv) + 5·L1(z_rel) + 0.5·CE(heat map)``;
``heatmap_from_stem: false`` stops that decoder at stride 4 (raw step ≈1.7× faster at 64 px, the loop ≈1.4×;
``benchmarks/peclr_full_labels.py`` uses it to fit three converged runs in 45 minutes; no committed report compares
its accuracy with the stride-2 default at equal steps, so it is off by default); ``head: linear`` is the
released ``rn_25D`` head with ``L = L1(uv) + 5·L1(z_rel)``.  Full fine-tuning or a frozen encoder.  3D via the
root depth fitted to all bones (``root: bones``, the root refinement that coarse 2D needs) or Iqbal's one-bone
closed form (``root: closed_form``) (:mod:`distill3d.geometry.hand25d`).  Metrics (val/test): PA-EPE and EPE
(mm), AUC 0-50 mm aligned and unaligned, 2D error (px), as FreiHAND's evaluation.

Data: the hands world (``dataset: hands``; unlabelled / labelled / val / test splits) or a FreiHAND download
(``dataset: freihand``, ``freihand_root``; :mod:`distill3d.data.freihand`, which also writes ``pred.json``) or
a FreiHAND-layout export of the hands world (``distill3d world export hands``; its evaluation split is the test
split).

**Predict** (``distill3d predict RUN_DIR IMAGE...``): 2D skeleton drawn on each hand crop and 3D joints in the
camera frame, lifted with the image's intrinsics K — ``<stem>_K.npy`` beside the image, else, for an image
``ROOT/<split>/rgb/<id>.jpg`` of a FreiHAND-layout folder, entry ``id`` of ``ROOT/<split>_K.json`` (and its
reference bone from ``<split>_scale.json``), else an assumed camera (focal 1.6·width, centred; the output says
so) — see :func:`~distill3d.methods.peclr.demo.predict_hand`.
"""

from distill3d.methods.peclr.demo import predict, predict_hand
from distill3d.methods.peclr.equivariance import canonicalise_projections
from distill3d.methods.peclr.lars import lars_scale_gradients
from distill3d.methods.peclr.task import (
    FinetuneTask,
    Options,
    PretrainTask,
    build_task,
    evaluate_hand_pose,
    normalise_images,
    predict_xyz,
    scaled_learning_rate,
)

DESCRIPTION = "PeCLR (Spurr, Dahiya et al. 2021): equivariant contrastive pre-training + 2.5D 3D hand pose fine-tuning"

__all__ = [
    "DESCRIPTION",
    "FinetuneTask",
    "Options",
    "PretrainTask",
    "build_task",
    "canonicalise_projections",
    "evaluate_hand_pose",
    "lars_scale_gradients",
    "normalise_images",
    "predict",
    "predict_hand",
    "predict_xyz",
    "scaled_learning_rate",
]
