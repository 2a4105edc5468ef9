"""The 2.5D hand pose representation of Iqbal et al. (ECCV 2018) and its closed-form lift to 3D.

A hand with J joints ``X_j`` (camera frame, metres), intrinsics ``K`` and a reference bone of known length
``s`` (FreiHAND's ``*_scale.json``: middle MCP → PIP, joints 9 → 10) is represented by

* ``uv_j``: the pixel projection of each joint, ``[u, v, 1]ᵀ ∝ K·X_j`` (Iqbal et al., eq. 1);
* ``z_rel_j = (Z_j − Z_root) / s``: root-relative depth in units of the reference bone (scale-normalised,
  Iqbal et al., Sec. 3.1).

Both are invariant to the global hand scale and translation along the viewing ray, which makes them learnable
from a crop. 3D is recovered by solving for the scale-normalised root depth ``Z_root^s = Z_root / s`` that gives
the reference bone unit length (Iqbal et al., eq. 6-7; a quadratic with one positive root), then

``X_j = K⁻¹·[u_j, v_j, 1]ᵀ · (Z_root^s + z_rel_j) · s``        (Iqbal et al., eq. 4-5).

All functions are batched over a leading dimension B and differentiable; no loops over joints.
"""

from __future__ import annotations

import torch

from distill3d.errors import ShapeError

__all__ = [
    "FREIHAND_REFERENCE_BONE",
    "ROOT_JOINT",
    "hand25d_to_xyz",
    "normalised_rays",
    "root_depth_from_bone",
    "root_depth_from_bones",
    "xyz_to_hand25d",
]

FREIHAND_REFERENCE_BONE = (9, 10)
"""Joints (n, m) of the bone whose length FreiHAND's ``training_scale.json`` gives (middle MCP → PIP)."""
ROOT_JOINT = 9
"""Default root joint of the relative depths: middle MCP, the reference bone's proximal end."""


def _check(uv: torch.Tensor, K: torch.Tensor) -> None:
    if uv.dim() != 3 or uv.shape[-1] != 2:
        raise ShapeError(f"uv must have shape (B, J, 2), got {tuple(uv.shape)}")
    if K.shape != (uv.shape[0], 3, 3):
        raise ShapeError(f"K must have shape ({uv.shape[0]}, 3, 3), got {tuple(K.shape)}")


def normalised_rays(uv: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """``K⁻¹·[u, v, 1]ᵀ`` for pixels uv (B, J, 2) and intrinsics K (B, 3, 3) → (B, J, 3) (third entry 1 for an
    upper-triangular K; any invertible K, e.g. one composed with an in-plane rotation, works)."""
    _check(uv, K)
    homogeneous = torch.cat([uv, torch.ones_like(uv[..., :1])], dim=-1)
    rays = torch.linalg.solve(K.to(uv.dtype).unsqueeze(1), homogeneous.unsqueeze(-1)).squeeze(-1)
    return rays / rays[..., 2:3]


def xyz_to_hand25d(xyz: torch.Tensor, K: torch.Tensor, scale: torch.Tensor,
                   root_joint: int = ROOT_JOINT) -> tuple[torch.Tensor, torch.Tensor]:
    """3D joints (B, J, 3) m, K (B, 3, 3), reference bone length ``scale`` (B,) m → (uv (B, J, 2) px,
    z_rel (B, J) in bone units) with ``z_rel_j = (Z_j − Z_root)/s`` (Iqbal et al., Sec. 3.1)."""
    if xyz.dim() != 3 or xyz.shape[-1] != 3:
        raise ShapeError(f"xyz must have shape (B, J, 3), got {tuple(xyz.shape)}")
    projected = xyz @ K.to(xyz.dtype).transpose(1, 2)
    uv = projected[..., :2] / projected[..., 2:3]
    z_rel = (xyz[..., 2] - xyz[:, root_joint : root_joint + 1, 2]) / scale.to(xyz.dtype).reshape(-1, 1)
    return uv, z_rel


def root_depth_from_bone(uv: torch.Tensor, z_rel: torch.Tensor, K: torch.Tensor,
                         bone: tuple[int, int] = FREIHAND_REFERENCE_BONE) -> torch.Tensor:
    """Scale-normalised root depth ``Z_root^s`` (B,) that makes the reference bone unit length (Iqbal eq. 6-7).

    With ``(x_n, y_n, 1) = K⁻¹[u_n, v_n, 1]ᵀ`` for the bone's joints n, m and their relative depths z_n, z_m,
    ``‖(x_n(Z + z_n) − x_m(Z + z_m), y_n(Z + z_n) − y_m(Z + z_m), z_n − z_m)‖ = 1`` is ``aZ² + bZ + c = 0`` with
    ``a = (x_n − x_m)² + (y_n − y_m)²``,
    ``b = 2[(x_n − x_m)(x_n z_n − x_m z_m) + (y_n − y_m)(y_n z_n − y_m z_m)]``,
    ``c = (x_n z_n − x_m z_m)² + (y_n z_n − y_m z_m)² + (z_n − z_m)² − 1``; the larger root is returned.
    A negative discriminant (a predicted bone longer in depth than its unit length) is clamped to 0.
    Ambiguity: when the bone points almost along the viewing ray (|ΔZ| ≳ 0.95·s) both roots can be positive and
    the true depth may be the smaller one; the larger root then misplaces the whole hand along the ray (the
    shape, and so PA-EPE, is affected only slightly).
    """
    rays = normalised_rays(uv, K)
    n, m = bone
    x_n, y_n, x_m, y_m = rays[:, n, 0], rays[:, n, 1], rays[:, m, 0], rays[:, m, 1]
    z_n, z_m = z_rel[:, n], z_rel[:, m]
    dx, dy = x_n - x_m, y_n - y_m
    px, py = x_n * z_n - x_m * z_m, y_n * z_n - y_m * z_m
    a = dx.square() + dy.square()
    b = 2 * (dx * px + dy * py)
    c = px.square() + py.square() + (z_n - z_m).square() - 1
    discriminant = (b.square() - 4 * a * c).clamp_min(0)
    return (-b + discriminant.sqrt()) / (2 * a.clamp_min(torch.finfo(a.dtype).tiny))


def root_depth_from_bones(uv: torch.Tensor, z_rel: torch.Tensor, K: torch.Tensor, bone_lengths: torch.Tensor,
                          parents: tuple[int, ...], depth_range: tuple[float, float] = (4.0, 50.0),
                          steps: int = 64, refine_steps: int = 30) -> torch.Tensor:
    """Scale-normalised root depth ``Z_root^s`` (B,) fitted to *every* bone: the root refinement for coarse 2D.

    The closed form (:func:`root_depth_from_bone`) trusts one bone of ≈ 10 px; a 1-2 px error in its ends
    moves the whole hand by decimetres.  Here ``Z`` minimises the robust misfit
    ``Σ_j |‖X_j(Z) − X_{parent(j)}(Z)‖ − ℓ_j|`` over all bones j with a parent (``parents[j] ≥ 0``), where
    ``X_j(Z) = K⁻¹[u_j, v_j, 1]ᵀ·(Z + z_rel_j)`` (scale-normalised, so the reference bone has unit length) and
    ``ℓ_j`` = ``bone_lengths`` (J,) or (B, J), expected bone lengths in reference-bone units (e.g. the mean hand's
    lengths divided by its reference bone).  A log-spaced grid of ``steps`` depths over ``depth_range`` is
    searched (vectorised over batch × grid × bones), then refined by ``refine_steps`` ternary-search rounds in the
    bracket around the best grid point.
    """
    rays = normalised_rays(uv, K)  # (B, J, 3)
    child = torch.tensor([j for j, p in enumerate(parents) if p >= 0], device=uv.device)
    parent = torch.tensor([p for p in parents if p >= 0], device=uv.device)
    lengths = bone_lengths.to(uv.dtype)
    lengths = (lengths[child] if lengths.dim() == 1 else lengths[:, child]).expand(uv.shape[0], len(child))

    def misfit(depth: torch.Tensor) -> torch.Tensor:  # depth (B, G) → (B, G)
        points = rays[:, None] * (depth[..., None] + z_rel[:, None]).unsqueeze(-1)  # (B, G, J, 3)
        bones = (points[:, :, child] - points[:, :, parent]).norm(dim=-1)  # (B, G, bones)
        return (bones - lengths[:, None]).abs().sum(-1)

    low, high = depth_range
    grid = torch.logspace(torch.log10(torch.tensor(low)), torch.log10(torch.tensor(high)), steps,
                          dtype=uv.dtype, device=uv.device).expand(uv.shape[0], steps)
    best = misfit(grid).argmin(1, keepdim=True)
    left = grid.gather(1, (best - 1).clamp_min(0)).squeeze(1)
    right = grid.gather(1, (best + 1).clamp_max(steps - 1)).squeeze(1)
    for _ in range(refine_steps):  # ternary search on the bracket (the misfit is unimodal near its minimum)
        a, b = left + (right - left) / 3, right - (right - left) / 3
        first = misfit(torch.stack([a, b], 1))
        move_right = first[:, 0] > first[:, 1]
        left, right = torch.where(move_right, a, left), torch.where(move_right, right, b)
    return (left + right) / 2


def hand25d_to_xyz(uv: torch.Tensor, z_rel: torch.Tensor, K: torch.Tensor, scale: torch.Tensor,
                   bone: tuple[int, int] = FREIHAND_REFERENCE_BONE, root_depth: torch.Tensor | None = None,
                   root_depth_range: tuple[float, float] | None = None) -> torch.Tensor:
    """Lift 2.5D (uv (B, J, 2) px, z_rel (B, J) bone units) to 3D (B, J, 3) metres (Iqbal et al., eq. 4-7).

    ``X_j = K⁻¹[u_j, v_j, 1]ᵀ · (Z_root^s + z_rel_j) · s`` with ``Z_root^s`` from :func:`root_depth_from_bone`
    unless ``root_depth`` (B,) (scale-normalised) is given; ``scale`` (B,) is the reference bone length (m).
    ``root_depth_range`` clamps ``Z_root^s`` (PeCLR's released model uses (4, 50)): a predicted bone whose ends
    nearly coincide in the image otherwise sends the hand metres away.
    """
    if z_rel.shape != uv.shape[:2]:
        raise ShapeError(f"z_rel must have shape {tuple(uv.shape[:2])}, got {tuple(z_rel.shape)}")
    if root_depth is None:
        root_depth = root_depth_from_bone(uv, z_rel, K, bone)
    if root_depth_range is not None:
        root_depth = root_depth.clamp(*root_depth_range)
    rays = normalised_rays(uv, K)
    depth = (root_depth.reshape(-1, 1) + z_rel) * scale.to(uv.dtype).reshape(-1, 1)
    return rays * depth.unsqueeze(-1)
