"""Contrastive losses shared by the methods: InfoNCE (anchor → target), pose-aware InfoNCE, NT-Xent (SimCLR), CRD.

Each loss is a plain function (``info_nce_loss``, ``pose_info_nce_loss``, ``nt_xent_loss``, ``nce_contrast_loss``,
``logit_kd_loss``) with a thin module that fixes its settings once per task (kornia's pattern). All take raw
(unnormalised) embeddings and L2-normalise them inside, except where noted.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from distill3d.errors import ShapeError
from distill3d.geometry.rotations import geodesic_distance, viewpoint_to_matrix
from distill3d.losses.gather import all_gather_with_grad, distributed_world


def _check_pair(a: torch.Tensor, b: torch.Tensor, names: tuple[str, str]) -> None:
    if a.dim() != 2 or a.shape != b.shape:
        raise ShapeError(f"{names[0]} and {names[1]} must both be (B, D) with the same shape, "
                         f"got {tuple(a.shape)} and {tuple(b.shape)}")


def info_nce_loss(anchors: torch.Tensor, targets: torch.Tensor, temperature: float = 0.1,
                  duplicate_positive: bool = False, target_dropout: float = 0.0) -> torch.Tensor:
    """In-batch InfoNCE from anchors ``u`` (B, D) to targets ``v`` (B, D); the positive of u_i is v_i.

    ``L = −(1/B) Σ_i log[ exp(u_i·v_i/τ) / (c·exp(u_i·v_i/τ) + Σ_{j≠i} exp(u_i·v_j/τ)) ]`` with unit vectors,
    where ``c = 1`` (textbook InfoNCE / CPC) or, with ``duplicate_positive=True``, ``c = 2``: the 3DAug-Pose
    official code (``infoNCE_KD``) adds the positive to a denominator that already sums over all B targets.
    ``target_dropout`` applies dropout to the targets before normalisation (0.3 in that code, always active).
    """
    _check_pair(anchors, targets, ("anchors", "targets"))
    if target_dropout > 0:
        targets = F.dropout(targets, target_dropout, training=True)
    u, v = F.normalize(anchors, dim=1), F.normalize(targets, dim=1)
    logits = u @ v.t() / temperature
    labels = torch.arange(u.shape[0], device=u.device)
    if not duplicate_positive:
        return F.cross_entropy(logits, labels)
    positive = logits.diagonal()
    denominator = torch.logsumexp(torch.cat([positive[:, None], logits], dim=1), dim=1)
    return (denominator - positive).mean()


class InfoNCELoss(nn.Module):
    """:func:`info_nce_loss` with its settings fixed at construction (τ > 0)."""

    def __init__(self, temperature: float = 0.1, duplicate_positive: bool = False, target_dropout: float = 0.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError("temperature must be > 0")
        self.temperature = temperature
        self.duplicate_positive = duplicate_positive
        self.target_dropout = target_dropout

    def forward(self, anchors: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return info_nce_loss(anchors, targets, self.temperature, self.duplicate_positive, self.target_dropout)


def pose_info_nce_loss(anchors: torch.Tensor, targets: torch.Tensor, viewpoints: torch.Tensor,
                       temperature: float = 0.1, positive_threshold_deg: float | None = None) -> torch.Tensor:
    """Pose-aware in-batch InfoNCE from anchors ``u`` (B, D) to targets ``v`` (B, D) (PoseContrast, Xiao et al. 2021).

    ``viewpoints`` (B, 3): (azimuth, elevation, in-plane) radians of the samples; ``Δ_ij`` is the geodesic distance
    of their rotations (radians). Unit vectors, ``s_ij = u_i·v_j/τ``. Two forms of the 3DAug-Pose official code:

    * ``positive_threshold_deg=None`` — ``poseNCE_KD``: negatives weighted by their pose distance, so a target
      seen from nearly the same viewpoint is hardly pushed away:
      ``L = −(1/B) Σ_i log[ e^{s_ii} / (e^{s_ii} + Σ_j (Δ_ij/π)·e^{s_ij}) ]``;
    * ``positive_threshold_deg=t`` — ``multiposeNCE_KD`` (t = 30° there): every target within ``t`` of the
      anchor's viewpoint (itself included) is a positive,
      ``L = −(1/B) Σ_i log[ P_i / (P_i + Σ_j e^{s_ij}) ]``, ``P_i = Σ_{j: Δ_ij ≤ t} e^{s_ij}``.

    Both pull features together by viewpoint across instances and categories (a category-agnostic pose
    embedding), where plain InfoNCE separates every sample from every other. Computed in log space.
    """
    _check_pair(anchors, targets, ("anchors", "targets"))
    if viewpoints.shape != (anchors.shape[0], 3):
        raise ShapeError(f"viewpoints must be (B, 3) with B = {anchors.shape[0]}, got {tuple(viewpoints.shape)}")
    u, v = F.normalize(anchors, dim=1), F.normalize(targets, dim=1)
    logits = u @ v.t() / temperature  # (B, B)
    with torch.no_grad():
        rotations = viewpoint_to_matrix(*viewpoints.double().unbind(-1))
        distance = geodesic_distance(rotations[:, None], rotations[None, :]).to(logits.dtype)  # (B, B) radians
    if positive_threshold_deg is None:
        numerator = logits.diagonal()
        weighted = logits + torch.log(distance / torch.pi)  # log 0 = −inf: identical viewpoints are no negatives
        denominator = torch.logsumexp(torch.cat([numerator[:, None], weighted], dim=1), dim=1)
    else:
        positive = (distance <= torch.deg2rad(distance.new_tensor(positive_threshold_deg))) | torch.eye(
            len(u), dtype=torch.bool, device=u.device)
        numerator = torch.logsumexp(logits.masked_fill(~positive, float("-inf")), dim=1)
        denominator = torch.logsumexp(torch.cat([numerator[:, None], logits], dim=1), dim=1)
    return (denominator - numerator).mean()


class PoseInfoNCELoss(nn.Module):
    """:func:`pose_info_nce_loss` with its settings fixed at construction (τ > 0, threshold in degrees or None)."""

    def __init__(self, temperature: float = 0.1, positive_threshold_deg: float | None = None) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError("temperature must be > 0")
        self.temperature = temperature
        self.positive_threshold_deg = positive_threshold_deg

    def forward(self, anchors: torch.Tensor, targets: torch.Tensor, viewpoints: torch.Tensor) -> torch.Tensor:
        return pose_info_nce_loss(anchors, targets, viewpoints, self.temperature, self.positive_threshold_deg)


def nt_xent_loss(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float = 0.5,
                 gather: Callable[[torch.Tensor], torch.Tensor] | None = None, rank: int = 0) -> torch.Tensor:
    """NT-Xent (normalised temperature-scaled cross entropy; SimCLR, Chen et al. 2020).

    Two views ``z_a``, ``z_b`` (B, D) are L2-normalised and stacked into 2B embeddings; each one's positive is
    the other view of the same sample and its negatives are the other 2B−2 embeddings:
    ``L = (1/2B) Σ_k −log[ exp(s_{k,p(k)}/τ) / Σ_{m≠k} exp(s_{k,m}/τ) ]``, s = cosine similarity.
    Equal to lightly's ``NTXentLoss``, PeCLR's ``vanila_contrastive_loss`` (on normalised inputs) and
    solo-learn's ``simclr_loss_func``.

    ``gather`` (optional) maps the local (2B, D) embeddings to the global batch of all processes
    (:func:`distill3d.losses.gather.all_gather_with_grad`); the local rows of process ``rank`` are then contrasted
    against every process's embeddings.
    """
    _check_pair(z_a, z_b, ("z_a", "z_b"))
    batch = z_a.shape[0]
    local = torch.cat([F.normalize(z_a, dim=1), F.normalize(z_b, dim=1)])  # (2B, D): views a then b
    # With ``gather`` each process contributes its (2B, D) rows [a_r; b_r]: the global layout is
    # [a_0; b_0; a_1; b_1; …] and this process's rows start at 2B·rank.
    candidates = local if gather is None else gather(local)
    offset = 0 if gather is None else 2 * batch * rank
    logits = local @ candidates.t() / temperature  # (2B, 2B·W)
    rows = torch.arange(2 * batch, device=local.device)
    self_index = rows + offset
    positive_index = (rows + batch) % (2 * batch) + offset
    logits = logits.masked_fill(F.one_hot(self_index, logits.shape[1]).bool(), float("-inf"))
    return F.cross_entropy(logits, positive_index)


class NTXentLoss(nn.Module):
    """:func:`nt_xent_loss` with τ fixed; ``gather_distributed=True`` takes the negatives from the global batch of
    all processes whenever a process group is running (lightly's flag), else from the local batch."""

    def __init__(self, temperature: float = 0.5, gather_distributed: bool = False) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError("temperature must be > 0")
        self.temperature, self.gather_distributed = temperature, gather_distributed

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        rank, world = distributed_world()
        if self.gather_distributed and world > 1:
            return nt_xent_loss(z_a, z_b, self.temperature, all_gather_with_grad, rank)
        return nt_xent_loss(z_a, z_b, self.temperature)


class ContrastMemory(nn.Module):
    """Two memory banks of L2-normalised embeddings for CRD (Tian et al., ICLR 2020).

    ``memory_student`` (n_data, D) holds student embeddings (scored against the teacher embedding);
    ``memory_teacher`` (n_data, D) holds teacher embeddings (scored against the student embedding).
    Scores are ``exp(m·e/τ)/Z`` with the normaliser Z = mean(exp(·)) · n_data estimated on the first call and
    frozen. After scoring, the rows of the batch are updated as ``normalize(μ·m + (1−μ)·e)``.
    """

    def __init__(self, dim: int, n_data: int, temperature: float = 0.07, momentum: float = 0.5,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.n_data, self.temperature, self.momentum = n_data, temperature, momentum
        stdv = 1.0 / (dim / 3) ** 0.5
        init = torch.rand(2, n_data, dim, generator=generator) * (2 * stdv) - stdv
        self.register_buffer("memory_student", init[0].clone())
        self.register_buffer("memory_teacher", init[1].clone())
        self.register_buffer("z_student", torch.tensor(-1.0))  # normaliser of scores of the student embedding
        self.register_buffer("z_teacher", torch.tensor(-1.0))  # normaliser of scores of the teacher embedding

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, index: torch.Tensor,
                contrast_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """student, teacher (B, D) unit embeddings; index (B,) dataset ids; contrast_index (B, K+1), column 0 = index.

        Returns (scores of the student embedding vs teacher memory, scores of the teacher embedding vs
        student memory), each (B, K+1, 1).
        """
        with torch.no_grad():
            teacher_rows = self.memory_teacher[contrast_index].detach()  # (B, K+1, D)
            student_rows = self.memory_student[contrast_index].detach()
        scores_student = torch.exp(torch.bmm(teacher_rows, student.unsqueeze(2)) / self.temperature)
        scores_teacher = torch.exp(torch.bmm(student_rows, teacher.unsqueeze(2)) / self.temperature)
        if self.z_student < 0:
            self.z_student.fill_((scores_student.mean() * self.n_data).item())
        if self.z_teacher < 0:
            self.z_teacher.fill_((scores_teacher.mean() * self.n_data).item())
        scores_student = scores_student / self.z_student
        scores_teacher = scores_teacher / self.z_teacher
        with torch.no_grad():
            for bank, embedding in ((self.memory_student, student), (self.memory_teacher, teacher)):
                mixed = bank[index] * self.momentum + embedding.detach() * (1 - self.momentum)
                bank.index_copy_(0, index, F.normalize(mixed, dim=1))
        return scores_student, scores_teacher


def nce_contrast_loss(scores: torch.Tensor, n_data: int, eps: float = 1e-7) -> torch.Tensor:
    """CRD's NCE loss on scores (B, K+1, 1) whose column 0 is the positive; noise distribution P_n = 1/n_data.

    ``L = −(1/B) Σ_b [ log(P⁺/(P⁺ + K·P_n + ε)) + Σ_k log(K·P_n/(P⁻_k + K·P_n + ε)) ]``.
    """
    batch, k = scores.shape[0], scores.shape[1] - 1
    noise = k / n_data
    positive = scores[:, 0]
    negative = scores[:, 1:]
    log_d1 = torch.log(positive / (positive + noise + eps))
    log_d0 = torch.log(noise / (negative + noise + eps))
    return -(log_d1.sum() + log_d0.sum()) / batch


class CRDLoss(nn.Module):
    """Contrastive representation distillation (Tian et al., ICLR 2020) with a momentum memory bank.

    Student features (B, student_dim) and teacher features (B, teacher_dim) are embedded by a linear layer
    each and L2-normalised; the loss is the NCE loss of the student embedding against the teacher memory
    plus that of the teacher embedding against the student memory.

    Args:
        student_dim, teacher_dim: input feature sizes; embed_dim: shared embedding size.
        n_data: number of training samples (memory rows); num_negatives: K per anchor;
        temperature: τ (0.07); momentum: memory update μ (0.5).
    """

    def __init__(self, student_dim: int, teacher_dim: int, n_data: int, embed_dim: int = 128,
                 num_negatives: int = 4096, temperature: float = 0.07, momentum: float = 0.5) -> None:
        super().__init__()
        self.embed_student = nn.Linear(student_dim, embed_dim)
        self.embed_teacher = nn.Linear(teacher_dim, embed_dim)
        self.memory = ContrastMemory(embed_dim, n_data, temperature, momentum)
        self.n_data, self.num_negatives = n_data, num_negatives

    def sample_contrast_index(self, index: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, K+1) memory rows: the positive ``index`` then K uniform random negatives (may include repeats)."""
        negatives = torch.randint(0, self.n_data, (index.shape[0], self.num_negatives), generator=generator,
                                  device=index.device)
        return torch.cat([index[:, None], negatives], dim=1)

    def forward(self, student_features: torch.Tensor, teacher_features: torch.Tensor, index: torch.Tensor,
                contrast_index: torch.Tensor | None = None) -> torch.Tensor:
        if contrast_index is None:
            contrast_index = self.sample_contrast_index(index)
        student = F.normalize(self.embed_student(student_features), dim=1)
        teacher = F.normalize(self.embed_teacher(teacher_features), dim=1)
        scores_student, scores_teacher = self.memory(student, teacher, index, contrast_index)
        return nce_contrast_loss(scores_student, self.n_data) + nce_contrast_loss(scores_teacher, self.n_data)


def logit_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Hinton et al. (2015) KD: ``τ² · KL(softmax(t/τ) ‖ softmax(s/τ))``, averaged over the batch."""
    log_student = F.log_softmax(student_logits / temperature, dim=1)
    log_teacher = F.log_softmax(teacher_logits / temperature, dim=1)
    return F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True) * temperature**2
