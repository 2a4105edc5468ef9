"""DGCNN (Wang et al., "Dynamic Graph CNN for Learning on Point Clouds", TOG 2019), fast on CPU and exact.

Points and features are kept as (B, N, C). Every EdgeConv rebuilds the k-nearest-neighbour graph in the feature
space of its input (the dynamic graph) and computes, for point i with neighbours j ∈ kNN(i) (the point itself
included, as in the official code),

    x'_i = max_{j ∈ kNN(i)} LeakyReLU_0.2( BN( W · [x_j − x_i, x_i] ) )                       (TOG 2019, Eq. 7–8)

with one linear layer W = [W_a | W_b] (no bias) and BatchNorm over all B·N·k edges. A plain implementation builds
the (B, 2C, N, k) edge tensor and runs a Conv2d on it; :class:`EdgeConv` computes the same function without ever
building an edge tensor:

1. W · [x_j − x_i, x_i] = a_j + d_i with a = W_a x and d = (W_b − W_a) x, both computed on the N points only.
2. BatchNorm's batch statistics over the edges e_ij = a_j + d_i are exact functions of C_in×C_in moments of the
   input features: with z_ij = [x_j ; x_i] and V = [W_a | W_b − W_a], Σ e = V Σ z and Σ e² = diag(V (Σ z zᵀ) Vᵀ),
   where Σ z zᵀ needs only Σ_j c_j x_j x_jᵀ (c_j: number of edges ending in j), Σ_i S_i x_iᵀ
   (S_i = Σ_{j ∈ kNN(i)} x_j, a fused gather-sum) and k Σ_i x_i x_iᵀ.
3. BN with per-channel scale s = γ/√(σ² + ε) and shift t = β − μ s, followed by LeakyReLU, is monotone in s·a_j
   for fixed i, so max_j LeakyReLU(s (a_j + d_i) + t) = LeakyReLU(max_j (s a_j + t) + s d_i). Only the per-point
   table s·a + t is gathered, reduced by max on the fly (:func:`gather_max`).

Step 2 is an identity for the values and, through autograd, for the gradients (the statistics are differentiable
functions of the features and W, as in BatchNorm's own backward); step 3 is exact (max commutes with monotone
maps), and the gradient of the max goes to one maximising neighbour as in ``Tensor.max(dim)``. So the layer
equals the plain EdgeConv up to floating-point rounding (tests/test_dgcnn.py checks it against a straightforward
EdgeConv). In training the features are centred by their (detached) batch mean first: e − mean(e) does not change
under a common shift of all x, so outputs and gradients are the same and the moments are better conditioned.

The kNN search (:func:`knn_indices`) ranks 2 x_i·x_j − |x_j|² (= |x_i|² − |x_i − x_j|²) from one batched matmul
and selects the k largest per row in two exact stages (block maxima, then the candidates of the best blocks).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from distill3d.errors import Distill3dError, ShapeError, check_shape

EDGE_WIDTHS = (64, 64, 128, 256)
"""Output widths of DGCNN's four EdgeConv layers (classification network of the paper)."""


@contextlib.contextmanager
def _autocast_off(device: torch.device) -> Iterator[None]:
    """Disable autocast on ``device`` (the kNN ranking is computed at float32 or wider)."""
    if torch.amp.is_autocast_available(device.type):
        with torch.autocast(device.type, enabled=False):
            yield
    else:
        yield


def knn_indices(features: torch.Tensor, k: int, block: int = 8) -> torch.Tensor:
    """Indices of the k nearest neighbours (Euclidean, the point itself included) of every point, per sample.

    Args:
        features: (B, N, C) point features (coordinates for the first layer); any float dtype and device. The
            distances are computed at float32 or wider, with autocast off.
        k: neighbours per point, 1 ≤ k ≤ N.
        block: size of the column blocks of the two-stage selection (0 = plain ``topk`` over all N columns).

    Returns:
        (B, N, k) int64 indices into the N points of the same sample, in no particular order.

    Two-stage exact top-k: the N columns of a row are split into N/block blocks (column c belongs to block
    c mod N/block); the k best blocks by their maximum contain every one of the row's k best columns (each such
    column lifts its block's maximum to at least the k-th best value, and at most k blocks can reach it), so the
    k best among those blocks' k·block columns are the row's k best. Ties may resolve differently from a single
    ``topk``; the selected values are the same.
    """
    check_shape("features", features, (None, None, None))
    b, n, _ = features.shape
    if not 1 <= k <= n:
        raise ShapeError(f"k must lie in [1, N = {n}] (the number of points), got k = {k}")
    with _autocast_off(features.device):
        x = features.to(torch.promote_types(features.dtype, torch.float32))
        squared_norms = (x * x).sum(dim=-1, keepdim=True)
        # score[b, i, j] = [2 x_i, −1] · [x_j, |x_j|²] = 2 x_i·x_j − |x_j|²: larger = nearer (|x_i|² is constant
        # along a row); one matmul writes the scores, with no broadcast term to copy in first.
        queries = torch.cat([2 * x, -torch.ones_like(squared_norms)], dim=-1)
        keys = torch.cat([x, squared_norms], dim=-1)
        scores = torch.bmm(queries, keys.transpose(1, 2))
    blocks = n // block if block > 0 else 0
    if block <= 1 or n % block != 0 or blocks < 2 * k:
        return scores.topk(k, dim=-1, sorted=False).indices
    strided = scores.view(b, n, block, blocks)  # [.., r, c] = column r·blocks + c; block c = its `block` columns
    best_blocks = strided.amax(dim=2).topk(k, dim=-1, sorted=False).indices  # (B, N, k)
    candidates = strided.gather(3, best_blocks.unsqueeze(2).expand(b, n, block, k)).view(b, n, block * k)
    best = candidates.topk(k, dim=-1, sorted=False).indices  # position r·k + j: member r of block best_blocks[j]
    return best_blocks.gather(2, best.remainder(k)) + best.div(k, rounding_mode="floor") * blocks


def _half_order(bits: torch.Tensor) -> torch.Tensor:
    """Order-preserving, self-inverse map of 16-bit float bit patterns read as int16: negative floats get their
    magnitude bits flipped, so that int16 order equals float order (−0 sorts just below +0)."""
    return torch.bitwise_xor(bits, torch.bitwise_and(bits >> 15, 0x7FFF))


def _max_with_slot(values: torch.Tensor, by_slot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Running maximum over the k neighbour slots of ``values`` rows, and the first maximising slot per element.
    ``by_slot``: (k, R) row indices. Returns (R, C) maxima and (R, C) slots (uint8 for k ≤ 256)."""
    k = by_slot.shape[0]
    best = values.index_select(0, by_slot[0])
    candidate = torch.empty_like(best)
    improved = torch.empty(best.shape, dtype=torch.bool, device=best.device)
    # slot = the last slot that strictly raised the running maximum = max_s s·[improved_s] (slots come in order).
    slot_dtype = torch.uint8 if k <= 256 else torch.int32
    slot = torch.zeros(best.shape, dtype=slot_dtype, device=best.device)
    marked = torch.empty_like(slot)
    for s in range(1, k):  # a loop over the k neighbour slots, each step vectorised over all points
        torch.index_select(values, 0, by_slot[s], out=candidate)
        torch.gt(candidate, best, out=improved)
        torch.maximum(best, candidate, out=best)
        flags = improved.view(torch.uint8) if slot_dtype == torch.uint8 else improved.to(slot_dtype)
        torch.mul(flags, s, out=marked)
        torch.maximum(slot, marked, out=slot)
    return best, slot


class _GatherMax(torch.autograd.Function):
    """out[r, c] = max_s table[neighbours[r, s], c]; the gradient goes to one maximising neighbour.

    Half dtypes: each value's order-preserving int16 image and the neighbour's index inside its group are packed
    into one int32 key, so a plain integer maximum per slot yields the exact maximum and its source at once
    (needs groups of ≤ 2^15 rows). Otherwise (float32, float64, larger groups): a running maximum plus the first
    maximising slot.
    """

    @staticmethod
    def forward(ctx, table: torch.Tensor, neighbours: torch.Tensor, group: int  # type: ignore[override]
                ) -> torch.Tensor:
        table_rows = table.shape[0]
        by_slot = neighbours.t().contiguous()  # (k, R)
        half = table.dtype in (torch.float16, torch.bfloat16)
        index_bits = max(1, (group - 1).bit_length())
        source_in_group = slot = None
        if half and index_bits <= 15:
            ordered = _half_order(table.view(torch.int16)).to(torch.int32)
            in_group = torch.arange(table_rows, device=table.device, dtype=torch.int32).remainder_(group)
            keys = torch.bitwise_or(ordered << index_bits, in_group.unsqueeze(1))
            best = keys.index_select(0, by_slot[0])
            candidate = torch.empty_like(best)
            for s in range(1, by_slot.shape[0]):  # a loop over the k neighbour slots, vectorised over all points
                torch.index_select(keys, 0, by_slot[s], out=candidate)
                torch.maximum(best, candidate, out=best)
            source_in_group = torch.bitwise_and(best, (1 << index_bits) - 1)
            out = _half_order((best >> index_bits).to(torch.int16)).view(table.dtype)
        elif half:  # half floats compare slowly on CPU; their order-preserving int16 images give the same order
            best, slot = _max_with_slot(_half_order(table.view(torch.int16)), by_slot)
            out = _half_order(best).view(table.dtype)
        else:
            out, slot = _max_with_slot(table, by_slot)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(neighbours, source_in_group if slot is None else slot)
            ctx.from_slot, ctx.group, ctx.table_rows = slot is not None, group, table_rows
        return out

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:  # type: ignore[override]
        neighbours, saved = ctx.saved_tensors
        if ctx.from_slot:
            source_rows = neighbours.gather(1, saved.long())  # (R, C) table row of each maximum
        else:
            rows = torch.arange(neighbours.shape[0], device=neighbours.device).unsqueeze(1)
            source_rows = saved.long() + rows.div(ctx.group, rounding_mode="floor") * ctx.group
        grad_table = grad_output.new_zeros(ctx.table_rows, grad_output.shape[1])
        return grad_table.scatter_add_(0, source_rows, grad_output), None, None


def gather_max(table: torch.Tensor, neighbours: torch.Tensor, group: int | None = None) -> torch.Tensor:
    """Max over gathered rows without building the gathered tensor: (R_t, C) table, (R, k) int64 row indices →
    (R, C) with out[r] = max_s table[neighbours[r, s]] (per channel), exact. Differentiable in ``table``; the
    gradient of each output goes to one maximising row, as ``Tensor.max(dim)`` does.

    ``group``: when the rows form consecutive groups of this size (the points of one sample) and every output row
    r only names rows of group r // group — as in a per-sample kNN graph — say so; half dtypes then take a faster
    path. Default: one group (no assumption).
    """
    return _GatherMax.apply(table, neighbours, table.shape[0] if group is None else group)


class _NeighbourSum(torch.autograd.Function):
    """out[r] = Σ_s table[neighbours[r, s]] (a fused gather-sum); the backward sums the output gradients of the
    rows that name each table row, over the reversed adjacency lists (no (R·k, C) tensor either way)."""

    @staticmethod
    def forward(ctx, table: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(neighbours)
        ctx.table_rows = table.shape[0]
        return F.embedding_bag(neighbours, table, mode="sum")

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, None]:  # type: ignore[override]
        (neighbours,) = ctx.saved_tensors
        k = neighbours.shape[1]
        targets = neighbours.reshape(-1)
        order = targets.argsort()
        in_degree = torch.zeros(ctx.table_rows, dtype=torch.long, device=targets.device).index_add_(
            0, targets, torch.ones_like(targets))
        offsets = in_degree.cumsum(0) - in_degree
        return F.embedding_bag(order // k, grad_output, offsets, mode="sum"), None


class _MaxMeanPool(torch.autograd.Function):
    """(B, N, C) → (max over N, mean over N), each (B, C). The maximum is found per block of points first (one
    vectorised ``amax`` pass, then an arg-max inside the winning block only); the backward writes the gradient
    tensor once (the mean's share) and adds the max's share at the B·C maximising points."""

    @staticmethod
    def forward(ctx, features: torch.Tensor, block: int) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        b, n, c = features.shape
        if block > 1 and n % block == 0 and n > block:
            block_maxima = features.view(b, n // block, block, c).amax(dim=2)  # (B, N/block, C)
            best_block = block_maxima.argmax(dim=1, keepdim=True)  # (B, 1, C)
            members = best_block * block + torch.arange(block, device=features.device).view(1, block, 1)
            values, offset = features.gather(1, members).max(dim=1, keepdim=True)  # inside the winning block
            index = best_block * block + offset
            values = values.squeeze(1)
        else:
            values, index = features.max(dim=1, keepdim=True)
            values = values.squeeze(1)
        mean = features.sum(dim=1) / n  # sum accumulates in float for half dtypes without a float copy
        ctx.save_for_backward(index)
        ctx.shape = (b, n, c)
        return values, mean.to(features.dtype)

    @staticmethod
    def backward(ctx, grad_max: torch.Tensor, grad_mean: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (index,) = ctx.saved_tensors
        b, n, c = ctx.shape
        grad = (grad_mean / n).unsqueeze(1).expand(b, n, c).contiguous()
        # One maximising point per (sample, channel): an indexed write without accumulation suffices (scatter ops
        # copy the whole tensor here).
        flat_index = ((torch.arange(b, device=index.device).view(b, 1, 1) * n + index) * c
                      + torch.arange(c, device=index.device)).view(-1)
        flat = grad.view(-1)
        flat.index_put_((flat_index,), flat[flat_index] + grad_max.reshape(-1).to(grad.dtype))
        return grad, None


def max_mean_pool(features: torch.Tensor, block: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Max and mean of (B, N, C) features over the N points → two (B, C) tensors (gradient of the max to one
    maximising point, as ``Tensor.max(dim)``). ``block``: points per block of the two-stage maximum."""
    return _MaxMeanPool.apply(features, block)


class EdgeConv(nn.Module):
    """One EdgeConv layer (Linear on [x_j − x_i, x_i] without bias → BatchNorm over edges → LeakyReLU → max over
    the k neighbours), computed without an edge tensor (see the module docstring). (B, N, C_in) features and
    (B, N, k) neighbour indices → (B, N, C_out).

    ``linear.weight`` (C_out, 2·C_in) is the official Conv2d(2·C_in, C_out, 1) weight without its 1×1 kernel axes;
    ``norm`` holds the BatchNorm parameters and running statistics (BatchNorm2d's update rule over B·N·k edges).
    """

    def __init__(self, in_channels: int, out_channels: int, negative_slope: float = 0.2) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.linear = nn.Linear(2 * in_channels, out_channels, bias=False)
        self.norm = nn.BatchNorm1d(out_channels)
        self.negative_slope = negative_slope

    def _split_weight(self) -> torch.Tensor:
        """[W_a ; W_b − W_a] (2·C_out, C_in): the maps of x_j and of x_i in W·[x_j − x_i, x_i] = W_a x_j + W_d x_i."""
        weight_neighbour, weight_centre = self.linear.weight.split(self.in_channels, dim=1)
        return torch.cat([weight_neighbour, weight_centre - weight_neighbour], dim=0)

    def _edge_statistics(self, features: torch.Tensor, split_weight: torch.Tensor, neighbours: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and biased variance per channel of e_ij = W_a x_j + W_d x_i over all R·k edges, from C_in×C_in
        moments of the (R, C_in) input features (``neighbours``: (R, k) rows of the same features).

        With V = [W_a | W_d] (C_out, 2·C_in) and z_ij = [x_j ; x_i], e_ij = V z_ij, so Σ e = V Σ z and
        Σ e² = diag(V (Σ z zᵀ) Vᵀ), where Σ z zᵀ has the blocks Σ_j c_j x_j x_jᵀ (c_j: edges ending in j),
        Σ_i S_i x_iᵀ (S_i = Σ_{j ∈ kNN(i)} x_j) and k Σ_i x_i x_iᵀ.
        """
        rows, k = neighbours.shape
        with torch.no_grad():
            in_degree = torch.zeros(rows, dtype=features.dtype, device=features.device).index_add_(
                0, neighbours.reshape(-1), torch.ones(rows * k, dtype=features.dtype, device=features.device))
        neighbour_sums = _NeighbourSum.apply(features, neighbours)  # (R, C_in)
        c_in = self.in_channels
        sum_z = torch.cat([in_degree @ features, k * features.sum(dim=0)])  # (2·C_in,)
        # One matmul for the three blocks: [c ⊙ x | S | k x]ᵀ x → Σ_j c_j x_j x_jᵀ, Σ_i S_i x_iᵀ, k Σ_i x_i x_iᵀ.
        stacked = torch.cat([features * in_degree.unsqueeze(1), neighbour_sums, k * features], dim=1)
        moment_neighbour, moment_cross, moment_centre = (stacked.t() @ features).split(c_in, dim=0)
        moments = torch.cat([torch.cat([moment_neighbour, moment_cross], dim=1),
                             torch.cat([moment_cross.t(), moment_centre], dim=1)], dim=0)  # Σ z zᵀ
        out_channels = self.out_channels
        v = torch.cat([split_weight[:out_channels], split_weight[out_channels:]], dim=1).to(features.dtype)
        edges = rows * k
        mean = (v @ sum_z) / edges
        second_moment = ((v @ moments) * v).sum(dim=1) / edges
        return mean, (second_moment - mean * mean).clamp_min(0)

    def _update_running_statistics(self, mean: torch.Tensor, variance: torch.Tensor, edges: int) -> None:
        norm = self.norm
        if norm.running_mean is None or norm.running_var is None or norm.num_batches_tracked is None:
            return
        with torch.no_grad():
            norm.num_batches_tracked.add_(1)
            momentum = 1.0 / float(norm.num_batches_tracked) if norm.momentum is None else norm.momentum
            unbiased = variance * (edges / max(edges - 1, 1))
            norm.running_mean.lerp_(mean.to(norm.running_mean.dtype), momentum)
            norm.running_var.lerp_(unbiased.to(norm.running_var.dtype), momentum)

    def forward(self, features: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
        check_shape("features", features, (None, None, self.in_channels))
        b, n, _ = features.shape
        check_shape("neighbours", neighbours, (b, n, None))
        k = neighbours.shape[2]
        rows = (neighbours + (torch.arange(b, device=neighbours.device) * n).view(b, 1, 1)).reshape(b * n, k)
        x = features.reshape(b * n, self.in_channels)
        split_weight = self._split_weight()
        norm = self.norm
        if self.training or norm.running_mean is None:
            # Batch statistics. e_ij − mean is unchanged when every x is shifted by one constant, so the layer runs
            # on features centred by their (detached) mean: better-conditioned moments, same output and gradients.
            centre = x.mean(dim=0, keepdim=True).detach()
            x = x - centre
            stats_dtype = torch.promote_types(x.dtype, torch.float32)
            with _autocast_off(x.device):
                mean, variance = self._edge_statistics(x.to(stats_dtype), split_weight.to(stats_dtype), rows)
                if self.training:
                    with torch.no_grad():  # the running mean is that of the uncentred edges: + (W_a + W_d) centre
                        weight_centre = self.linear.weight[:, self.in_channels:].to(stats_dtype)
                        uncentred = mean + (centre.to(stats_dtype) @ weight_centre.t()).squeeze(0)
                    self._update_running_statistics(uncentred, variance.detach(), b * n * k)
        else:
            mean, variance = norm.running_mean, norm.running_var
        scale = norm.weight * torch.rsqrt(variance + norm.eps)
        shift = norm.bias - mean * scale
        projected = F.linear(x, split_weight)  # [a | d] = [W_a x ; W_d x] per point, (R, 2·C_out)
        a, d = projected.split(self.out_channels, dim=1)
        scale, shift = scale.to(a.dtype), shift.to(a.dtype)
        # max_j LeakyReLU(s (a_j + d_i) + t) = LeakyReLU(max_j (s a_j + t) + s d_i): gather only the table s a + t.
        neighbour_max = gather_max(torch.addcmul(shift, a, scale), rows, group=n)
        out = F.leaky_relu(torch.addcmul(neighbour_max, d, scale), self.negative_slope)
        return out.view(b, n, self.out_channels)


class DGCNNEncoder(nn.Module):
    """DGCNN backbone: EdgeConv layers on dynamic kNN graphs, their outputs concatenated, then a shared
    Linear → BatchNorm → LeakyReLU(0.2) to ``emb_dims`` per point (the official "conv5").

    Args:
        in_channels: 3 for xyz (the first graph is built on all input channels, as in the official code).
        k: neighbours per point (20 in the paper's classification network).
        widths: EdgeConv output widths.
        emb_dims: per-point embedding width (1024).
        knn_block: block size of the exact two-stage kNN selection (0 = plain topk).

    Input (B, N, in_channels); output (point_features (B, N, emb_dims), edge_features (B, N, sum(widths))).
    """

    def __init__(self, in_channels: int = 3, k: int = 20, widths: tuple[int, ...] = EDGE_WIDTHS,
                 emb_dims: int = 1024, negative_slope: float = 0.2, knn_block: int = 8) -> None:
        super().__init__()
        self.in_channels, self.k, self.emb_dims, self.knn_block = in_channels, k, emb_dims, knn_block
        channels = (in_channels, *widths)
        self.edge_convs = nn.ModuleList(EdgeConv(c_in, c_out, negative_slope)
                                        for c_in, c_out in pairwise(channels))
        self.edge_dims = sum(widths)
        self.embed = nn.Linear(self.edge_dims, emb_dims, bias=False)
        self.embed_norm = nn.BatchNorm1d(emb_dims)
        self.negative_slope = negative_slope

    def forward(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_shape("points", points, (None, None, self.in_channels))
        b, n, _ = points.shape
        if n < self.k:
            raise ShapeError(f"DGCNN needs at least k = {self.k} points per cloud, got N = {n}")
        features, outputs = points, []
        for edge_conv in self.edge_convs:
            with torch.no_grad():
                neighbours = knn_indices(features.detach(), self.k, self.knn_block)
            features = edge_conv(features, neighbours)
            outputs.append(features)
        edge_features = torch.cat(outputs, dim=-1)  # (B, N, sum(widths))
        embedded = self.embed_norm(self.embed(edge_features.reshape(b * n, self.edge_dims)))
        point_features = F.leaky_relu(embedded, self.negative_slope).view(b, n, self.emb_dims)
        return point_features, edge_features


class DGCNNClassifier(nn.Module):
    """DGCNN classification network: encoder → [max-pool, mean-pool] of the per-point embeddings (2·emb_dims) →
    Linear 512 (no bias) → BN → LeakyReLU → Dropout → Linear 256 → BN → LeakyReLU → Dropout → Linear num_classes.

    ``forward(points (B, N, in_channels), return_point_features=False)`` → logits (B, num_classes), or
    (logits, point_features (B, N, emb_dims)) — the per-point embeddings (after BN and LeakyReLU, so they can be
    negative) for PointMCD's visibility-aware projection.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, k: int = 20, emb_dims: int = 1024,
                 widths: tuple[int, ...] = EDGE_WIDTHS, head_widths: tuple[int, int] = (512, 256),
                 dropout: float = 0.5, negative_slope: float = 0.2, knn_block: int = 8) -> None:
        super().__init__()
        self.encoder = DGCNNEncoder(in_channels, k, widths, emb_dims, negative_slope, knn_block)
        first, second = head_widths
        self.head = nn.Sequential(
            nn.Linear(2 * emb_dims, first, bias=False), nn.BatchNorm1d(first), nn.LeakyReLU(negative_slope),
            nn.Dropout(dropout),
            nn.Linear(first, second), nn.BatchNorm1d(second), nn.LeakyReLU(negative_slope), nn.Dropout(dropout),
            nn.Linear(second, num_classes),
        )

    def forward(self, points: torch.Tensor, return_point_features: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        point_features, _ = self.encoder(points)
        pooled = torch.cat(max_mean_pool(point_features), dim=-1)
        logits = self.head(pooled)
        return (logits, point_features) if return_point_features else logits


def category_one_hot(category: torch.Tensor, num_categories: int, batch: int, dtype: torch.dtype) -> torch.Tensor:
    """(B,) integer category labels or a (B, num_categories) one-hot/soft encoding → (B, num_categories) floats."""
    if category.dim() == 1 and not category.is_floating_point():
        check_shape("category", category, (batch,))
        if category.device.type != "meta" and category.numel() and (
                int(category.min()) < 0 or int(category.max()) >= num_categories):
            raise Distill3dError(f"category labels must lie in [0, {num_categories}), got values in "
                                 f"[{int(category.min())}, {int(category.max())}]")
        return F.one_hot(category, num_categories).to(dtype)
    check_shape("category", category, (batch, num_categories))
    return category.to(dtype)


class _PointHead(nn.Sequential):
    """Per-point Linear → BN → LeakyReLU (→ Dropout) layers on (R, C) rows, then a Linear to the outputs."""

    def __init__(self, in_dims: int, widths: tuple[int, ...], out_dims: int, dropout: tuple[float, ...],
                 negative_slope: float) -> None:
        layers: list[nn.Module] = []
        for index, width in enumerate(widths):
            layers += [nn.Linear(in_dims, width, bias=False), nn.BatchNorm1d(width), nn.LeakyReLU(negative_slope)]
            if index < len(dropout) and dropout[index] > 0:
                layers.append(nn.Dropout(dropout[index]))
            in_dims = width
        layers.append(nn.Linear(in_dims, out_dims))
        super().__init__(*layers)


class DGCNNPartSegmenter(nn.Module):
    """DGCNN part segmentation after the official ``DGCNN_partseg`` head, on the same EdgeConv encoder as the
    classifier (single-layer EdgeConvs, so all of them take the fast path; no spatial T-Net).

    Per point: [EdgeConv outputs (sum(widths)), global max of the embeddings (emb_dims), the category one-hot
    lifted by Linear → BN → LeakyReLU to ``category_dims``] → 256 → Dropout → 256 → Dropout → 128 → num_parts
    (Linear → BN → LeakyReLU(0.2) layers).

    ``forward(points (B, N, in_channels), category (B,) int64 or (B, num_categories) one-hot,
    return_point_features=False)`` → logits (B, N, num_parts), or (logits, point_features (B, N, emb_dims)).
    """

    def __init__(self, num_parts: int, num_categories: int, in_channels: int = 3, k: int = 20,
                 emb_dims: int = 1024, widths: tuple[int, ...] = EDGE_WIDTHS,
                 head_widths: tuple[int, ...] = (256, 256, 128), dropout: float = 0.5, category_dims: int = 64,
                 negative_slope: float = 0.2, knn_block: int = 8) -> None:
        super().__init__()
        self.num_categories = num_categories
        self.encoder = DGCNNEncoder(in_channels, k, widths, emb_dims, negative_slope, knn_block)
        self.category_embed = nn.Sequential(nn.Linear(num_categories, category_dims, bias=False),
                                            nn.BatchNorm1d(category_dims), nn.LeakyReLU(negative_slope))
        in_dims = self.encoder.edge_dims + emb_dims + category_dims
        self.head = _PointHead(in_dims, head_widths, num_parts, (dropout, dropout), negative_slope)

    def forward(self, points: torch.Tensor, category: torch.Tensor, return_point_features: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        point_features, edge_features = self.encoder(points)
        b, n, _ = point_features.shape
        one_hot = category_one_hot(category, self.num_categories, b, point_features.dtype)
        shape_context = torch.cat([max_mean_pool(point_features)[0], self.category_embed(one_hot)], dim=-1)
        per_point = torch.cat([edge_features, shape_context.unsqueeze(1).expand(b, n, -1)
                               .to(edge_features.dtype)], dim=-1)
        logits = self.head(per_point.reshape(b * n, -1)).view(b, n, -1)
        return (logits, point_features) if return_point_features else logits
