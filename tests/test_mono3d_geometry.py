"""Encodings of the CenterNet-style monocular 3D detector (distill3d.geometry.mono3d): transforms and their
inverses, CenterNet heat-map targets against the reference formulas, and perfect maps decoding to their boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from distill3d.data.worlds.road import MEAN_DIMENSIONS, image_intrinsics, image_projection
from distill3d.geometry.boxes3d import project_box3d_to_image, rotation_y_to_alpha
from distill3d.geometry.mono3d import (
    alpha_to_bins,
    bins_to_alpha,
    bottom_centre,
    box_centre,
    decode_detections,
    depth_from_raw,
    dimensions_from_log_ratio,
    gather_at,
    gaussian_radius,
    heatmap_targets,
    lift_centre,
    log_ratio_from_dimensions,
    offset3d_targets,
    project_centre,
    raw_from_depth,
    soft_bins_to_alpha,
)

IMAGE_SIZE = (96, 320)
CLASS_MEANS = torch.tensor([MEAN_DIMENSIONS[name] for name in ("Car", "Pedestrian", "Cyclist")], dtype=torch.float64)


def _angle_difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.remainder(a - b + math.pi, 2 * math.pi) - math.pi


def test_depth_transform_matches_centernet_and_inverts():
    raw = torch.linspace(-5, 3, 50, dtype=torch.float64)
    np.testing.assert_allclose(depth_from_raw(raw), 1 / torch.sigmoid(raw) - 1, rtol=1e-10)
    depth = torch.tensor([0.5, 1.0, 7.3, 42.0, 80.0], dtype=torch.float64)
    np.testing.assert_allclose(depth_from_raw(raw_from_depth(depth)), depth, rtol=1e-12)
    np.testing.assert_allclose(torch.sigmoid(raw_from_depth(depth)), 1 / (1 + depth), rtol=1e-12)


def test_dimensions_log_ratio_round_trip():
    classes = torch.tensor([0, 1, 2, 0])
    dims = CLASS_MEANS[classes] * torch.tensor([[1.1, 0.9, 1.2], [1.0, 1.0, 1.0], [0.8, 1.3, 0.7], [1, 1, 1.05]],
                                               dtype=torch.float64)
    values = log_ratio_from_dimensions(dims, CLASS_MEANS[classes])
    np.testing.assert_allclose(values[1], 0.0, atol=1e-12)
    np.testing.assert_allclose(dimensions_from_log_ratio(values, CLASS_MEANS[classes]), dims, rtol=1e-12)


@pytest.mark.parametrize("num_bins", [4, 12])
def test_alpha_bins_round_trip_with_wrap_around(num_bins):
    bin_width = 2 * math.pi / num_bins
    edges = torch.arange(num_bins, dtype=torch.float64) * bin_width - bin_width / 2  # bin boundaries
    alpha = torch.cat([
        torch.linspace(-math.pi, math.pi, 101, dtype=torch.float64),
        torch.tensor([-math.pi, math.pi - 1e-9, -math.pi + 1e-9, 3 * math.pi + 0.2, -5.0, 7.0], dtype=torch.float64),
        edges, edges - 1e-9, edges + 1e-9,
    ])
    bins, residual = alpha_to_bins(alpha, num_bins)
    assert bins.dtype == torch.long and int(bins.min()) >= 0 and int(bins.max()) < num_bins
    assert float(residual.min()) >= -bin_width / 2 - 1e-12 and float(residual.max()) < bin_width / 2 + 1e-12
    logits = torch.nn.functional.one_hot(bins, num_bins).to(torch.float64) * 5.0
    residuals = torch.zeros_like(logits).scatter(1, bins[:, None], residual[:, None])
    residuals = residuals + (1 - torch.nn.functional.one_hot(bins, num_bins)) * 0.3  # other bins must be ignored
    decoded = bins_to_alpha(logits, residuals)
    assert float(decoded.min()) >= -math.pi and float(decoded.max()) < math.pi
    assert float(_angle_difference(decoded, alpha).abs().max()) < 1e-9


def test_alpha_bins_centres_and_wrap():
    bins, residual = alpha_to_bins(torch.tensor([0.0, math.pi - 0.01, -math.pi + 0.01, math.pi / 6 + 0.1]), 12)
    assert bins.tolist() == [0, 6, 6, 1]  # bin 6 (centred on ±π) takes both sides of the wrap
    np.testing.assert_allclose(residual, [0.0, -0.01, 0.01, 0.1], atol=1e-6)
    float32 = torch.linspace(-math.pi, math.pi, 1001)
    b32, r32 = alpha_to_bins(float32, 12)
    back = bins_to_alpha(torch.nn.functional.one_hot(b32, 12).float(), torch.zeros(1001, 12).scatter(1, b32[:, None],
                                                                                                      r32[:, None]))
    assert float(_angle_difference(back.double(), float32.double()).abs().max()) < 1e-5


def test_soft_bins_to_alpha_matches_hard_decoding_and_is_differentiable():
    alpha = torch.tensor([-3.1, -1.0, 0.0, 0.4, 2.9, 3.14], dtype=torch.float64)
    bins, residual = alpha_to_bins(alpha, 12)
    logits = (torch.nn.functional.one_hot(bins, 12).to(torch.float64) * 40.0).requires_grad_()
    residuals = torch.zeros(6, 12, dtype=torch.float64).scatter(1, bins[:, None], residual[:, None]).requires_grad_()
    soft = soft_bins_to_alpha(logits, residuals)
    assert float(_angle_difference(soft.detach(), alpha).abs().max()) < 1e-9
    np.testing.assert_allclose(_angle_difference(soft, bins_to_alpha(logits, residuals)).detach(), 0, atol=1e-9)
    soft_mixed = soft_bins_to_alpha(logits * 0.05, residuals)
    soft_mixed.sum().backward()
    assert float(logits.grad.abs().sum()) > 0 and float(residuals.grad.abs().sum()) > 0


@pytest.mark.parametrize("camera_kind", ["K", "P"])
def test_lift_centre_inverts_projection(camera_kind):
    generator = torch.Generator().manual_seed(0)
    centres = torch.stack([torch.empty(20).uniform_(-10, 10, generator=generator),
                           torch.empty(20).uniform_(-1, 2, generator=generator),
                           torch.empty(20).uniform_(3, 70, generator=generator)], dim=-1).double()
    camera = torch.from_numpy(image_intrinsics(IMAGE_SIZE) if camera_kind == "K" else image_projection(IMAGE_SIZE))
    uv, depth = project_centre(centres, camera)
    np.testing.assert_allclose(depth, centres[:, 2])
    np.testing.assert_allclose(lift_centre(uv, depth, camera), centres, atol=1e-9)
    per_point = camera.expand(20, *camera.shape)  # one camera per point gives the same answer
    np.testing.assert_allclose(lift_centre(uv, depth, per_point), centres, atol=1e-9)
    # the projection agrees with the 3D box projection of distill3d.geometry.boxes3d (a zero-size box)
    boxes = torch.cat([centres, torch.zeros(20, 3, dtype=torch.float64), torch.zeros(20, 1, dtype=torch.float64)], 1)
    corners_uv, _ = project_box3d_to_image(boxes, camera)
    np.testing.assert_allclose(corners_uv[:, 0], uv, atol=1e-9)


def test_box_and_bottom_centre():
    boxes = torch.tensor([[1.0, 1.65, 20.0, 1.5, 1.6, 3.9, 0.3]])
    centre = box_centre(boxes)
    np.testing.assert_allclose(centre, [[1.0, 0.9, 20.0]])
    np.testing.assert_allclose(bottom_centre(centre, boxes[:, 3]), boxes[:, :3])


def test_gather_at_reads_cells():
    maps = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    batch_index, cell_index = torch.tensor([0, 1, 1]), torch.tensor([0, 7, 19])
    gathered = gather_at(maps, batch_index, cell_index)
    assert gathered.shape == (3, 3)
    for row, (b, cell) in enumerate(zip(batch_index.tolist(), cell_index.tolist(), strict=True)):
        np.testing.assert_array_equal(gathered[row], maps[b, :, cell // 5, cell % 5])


def _reference_gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """CenterNet's gaussian_radius (xingyizhou/CenterNet src/lib/utils/image.py), transcribed."""
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2**2 - 4 * 4 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def _reference_splat(heatmap: np.ndarray, centre: tuple[int, int], radius: int) -> None:
    """CenterNet's draw_umich_gaussian (without the negligible eps cut), transcribed."""
    diameter = 2 * radius + 1
    sigma = diameter / 6
    ys, xs = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    gaussian = np.exp(-(xs * xs + ys * ys) / (2 * sigma * sigma))
    x, y = centre
    height, width = heatmap.shape
    left, right = min(x, radius), min(width - x, radius + 1)
    top, bottom = min(y, radius), min(height - y, radius + 1)
    window = heatmap[y - top:y + bottom, x - left:x + right]
    np.maximum(window, gaussian[radius - top:radius + bottom, radius - left:radius + right], out=window)


def test_gaussian_radius_matches_centernet():
    sizes = [(2.0, 3.0), (10.0, 4.0), (30.5, 60.0), (1.0, 1.0), (0.0, 5.0)]
    radius = gaussian_radius(torch.tensor([h for h, _ in sizes]), torch.tensor([w for _, w in sizes]))
    np.testing.assert_allclose(radius, [_reference_gaussian_radius(h, w) for h, w in sizes], rtol=1e-5)


def test_heatmap_targets_match_reference_splats():
    stride, map_size = 4, (24, 80)
    boxes2d = torch.tensor([[10.0, 20.0, 60.0, 50.0], [40.0, 22.0, 70.0, 60.0], [300.0, 80.0, 319.0, 95.0],
                            [100.0, 30.0, 130.0, 70.0], [0.0, 0.0, 3.0, 2.0]], dtype=torch.float64)
    classes = torch.tensor([0, 0, 2, 1, 0])
    batch_index = torch.tensor([0, 0, 0, 1, 1])
    targets = heatmap_targets(boxes2d, classes, batch_index, 2, 3, map_size, stride)
    assert targets["heatmap"].shape == (2, 3, 24, 80) and targets["heatmap"].dtype == torch.float64

    expected = np.zeros((2, 3, *map_size))
    for box, cls, b in zip(boxes2d.numpy(), classes.tolist(), batch_index.tolist(), strict=True):
        centre = (box[:2] + box[2:]) / 2 / stride
        radius = max(0, int(_reference_gaussian_radius((box[3] - box[1]) / stride, (box[2] - box[0]) / stride)))
        _reference_splat(expected[b, cls], (int(centre[0]), int(centre[1])), radius)
    np.testing.assert_allclose(targets["heatmap"], expected, atol=1e-12)

    centres = (boxes2d[:, :2] + boxes2d[:, 2:]) / 2
    cell_xy = torch.stack([targets["cell_index"] % 80, targets["cell_index"] // 80], -1)
    np.testing.assert_allclose((cell_xy + targets["offset2d"]) * stride, centres, atol=1e-12)
    assert float(targets["offset2d"].min()) >= 0 and float(targets["offset2d"].max()) < 1
    np.testing.assert_allclose(targets["size2d"], boxes2d[:, 2:] - boxes2d[:, :2])
    peaks = targets["heatmap"][batch_index, classes].flatten(1).gather(1, targets["cell_index"][:, None])
    np.testing.assert_allclose(peaks, 1.0)


def test_heatmap_targets_clamp_centres_outside_the_map():
    boxes2d = torch.tensor([[-20.0, -10.0, -4.0, -2.0], [318.0, 90.0, 340.0, 110.0]])
    targets = heatmap_targets(boxes2d, torch.tensor([0, 1]), torch.tensor([0, 0]), 1, 2, (24, 80), 4)
    assert targets["cell_index"].tolist() == [0, 23 * 80 + 79]
    np.testing.assert_allclose(targets["heatmap"][0, 0, 0, 0], 1.0)
    np.testing.assert_allclose(targets["heatmap"][0, 1, 23, 79], 1.0)


def _scene_boxes() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Boxes (bottom centre) of two images, their classes and image index (centres in distinct cells)."""
    boxes3d = torch.tensor([
        [-3.0, 1.65, 15.0, 1.50, 1.60, 3.90, 0.40],
        [2.5, 1.65, 25.0, 1.55, 1.70, 4.10, -2.80],
        [6.0, 1.65, 12.0, 1.80, 0.65, 0.80, 3.10],
        [-1.0, 1.65, 30.0, 1.70, 0.60, 1.80, -1.20],
        [0.5, 1.65, 9.0, 1.45, 1.55, 3.70, 1.57],
    ], dtype=torch.float64)
    return boxes3d, torch.tensor([0, 0, 1, 2, 2]), torch.tensor([0, 0, 0, 1, 1])


def _perfect_outputs(boxes3d, classes, batch_index, P, batch=2, num_bins=12, stride=4):
    """Head maps that describe the boxes exactly, built with the encoders of distill3d.geometry.mono3d."""
    height, width = IMAGE_SIZE[0] // stride, IMAGE_SIZE[1] // stride
    _, boxes2d = project_box3d_to_image(boxes3d, P)  # (N, 4) input px (a single P for all images)
    targets = heatmap_targets(boxes2d, classes, batch_index, batch, 3, (height, width), stride)
    eps = 1e-9
    outputs = {"heatmap": torch.logit(targets["heatmap"].clamp(eps, 1 - eps))}
    for name, channels in (("size2d", 2), ("offset2d", 2), ("offset3d", 2), ("depth", 1), ("depth_log_sigma", 1),
                           ("dimensions", 3), ("orientation", 2 * num_bins)):
        outputs[name] = torch.zeros(batch, channels, height, width, dtype=torch.float64)
    centre = box_centre(boxes3d)
    uv, depth = project_centre(centre, P)
    alpha = rotation_y_to_alpha(boxes3d[:, 6], boxes3d[:, :3])
    bins, residual = alpha_to_bins(alpha, num_bins)
    orientation = torch.zeros(len(boxes3d), 2 * num_bins, dtype=torch.float64)
    orientation[torch.arange(len(boxes3d)), bins] = 4.0
    orientation[torch.arange(len(boxes3d)), num_bins + bins] = residual
    values = {"size2d": targets["size2d"], "offset2d": targets["offset2d"],
              "offset3d": offset3d_targets(uv, targets["cell_index"], width, stride),
              "depth": raw_from_depth(depth)[:, None], "depth_log_sigma": torch.full((len(boxes3d), 1), -1.0),
              "dimensions": log_ratio_from_dimensions(boxes3d[:, 3:6], CLASS_MEANS[classes]),
              "orientation": orientation}
    for name, value in values.items():
        flat = outputs[name].flatten(2)
        flat[batch_index, :, targets["cell_index"]] = value.to(flat.dtype)
    return outputs, boxes2d


@pytest.mark.parametrize("camera_kind", ["K", "P"])
def test_perfect_maps_decode_to_the_boxes(camera_kind):
    boxes3d, classes, batch_index = _scene_boxes()
    camera = torch.from_numpy(image_intrinsics(IMAGE_SIZE) if camera_kind == "K" else image_projection(IMAGE_SIZE))
    outputs, boxes2d = _perfect_outputs(boxes3d, classes, batch_index, camera)
    cameras = camera.expand(2, *camera.shape)
    detections = decode_detections(outputs, cameras, CLASS_MEANS, top_k=3)
    assert len(detections) == 2
    for b, image in enumerate(detections):
        assert set(image) == {"class", "score", "box2d", "boxes3d", "alpha", "depth_sigma"}
        assert image["boxes3d"].shape == (3, 7) and image["box2d"].shape == (3, 4)
        true = batch_index == b
        kept = image["score"] > 0.5  # the object peaks (score 1 − 1e-9); image 1 has 2 objects, so one filler
        assert int(kept.sum()) == int(true.sum())
        found = image["boxes3d"][kept]
        order = torch.argsort(found[:, 2])  # match by depth
        truth_order = torch.argsort(boxes3d[true][:, 2])
        np.testing.assert_allclose(found[order][:, :6], boxes3d[true][truth_order][:, :6], atol=1e-4)
        np.testing.assert_allclose(_angle_difference(found[order][:, 6], boxes3d[true][truth_order][:, 6]), 0,
                                   atol=1e-4)
        assert image["class"][kept][order].tolist() == classes[true][truth_order].tolist()
        np.testing.assert_allclose(image["box2d"][kept][order], boxes2d[true][truth_order], atol=1e-6)
        np.testing.assert_allclose(image["depth_sigma"][kept], math.exp(-1.0), rtol=1e-9)
    thresholded = decode_detections(outputs, cameras, CLASS_MEANS, top_k=3, score_threshold=0.5)
    assert [len(image["score"]) for image in thresholded] == [3, 2]
    confident = decode_detections(outputs, cameras, CLASS_MEANS, top_k=3, depth_confidence=True)
    np.testing.assert_allclose(confident[1]["score"][:2], detections[1]["score"][:2] * math.exp(-math.exp(-1.0)))


def test_decode_nms_keeps_one_peak_per_object_and_sorts_scores():
    outputs, _ = _perfect_outputs(*_scene_boxes(), torch.from_numpy(image_projection(IMAGE_SIZE)))
    detections = decode_detections(outputs, torch.from_numpy(image_projection(IMAGE_SIZE)), CLASS_MEANS, top_k=20)
    for image in detections:
        scores = image["score"]
        assert bool((scores[:-1] >= scores[1:]).all())
        # only the peaks survive 3x3 NMS with a high score; the rest of a splat is suppressed
        assert int((scores > 0.01).sum()) == int((scores > 0.5).sum())


def test_geometry_runs_on_meta_device():
    meta = torch.device("meta")
    boxes2d = torch.empty(5, 4, device=meta)
    targets = heatmap_targets(boxes2d, torch.zeros(5, dtype=torch.long, device=meta),
                              torch.zeros(5, dtype=torch.long, device=meta), 2, 3, (24, 80), 4)
    assert targets["heatmap"].shape == (2, 3, 24, 80) and targets["heatmap"].device == meta
    outputs = {"heatmap": torch.empty(2, 3, 24, 80, device=meta)}
    for name, channels in (("size2d", 2), ("offset2d", 2), ("offset3d", 2), ("depth", 1), ("dimensions", 3),
                           ("orientation", 24)):
        outputs[name] = torch.empty(2, channels, 24, 80, device=meta)
    detections = decode_detections(outputs, torch.empty(2, 3, 4, device=meta), CLASS_MEANS.float().to(meta), top_k=7)
    assert detections[1]["boxes3d"].shape == (7, 7) and detections[1]["boxes3d"].device == meta


def test_focal_normalised_depth_decodes_by_each_cameras_focal_length():
    """``depth_focal``: the depth map holds the depth seen at that focal length; a camera at that f_y decodes it
    unchanged, a camera zoomed ×2 (f_y doubled, a crop resized) decodes twice the map's depth."""
    boxes3d, classes, batch_index = _scene_boxes()
    camera = torch.from_numpy(image_projection(IMAGE_SIZE))
    outputs, _ = _perfect_outputs(boxes3d, classes, batch_index, camera)
    focal = float(camera[1, 1])
    plain = decode_detections(outputs, camera.expand(2, 3, 4), CLASS_MEANS, top_k=3)
    same = decode_detections(outputs, camera.expand(2, 3, 4), CLASS_MEANS, top_k=3, depth_focal=focal)
    zoom = torch.diag(torch.tensor([2.0, 2.0, 1.0], dtype=camera.dtype))
    zoomed = decode_detections(outputs, (zoom @ camera).expand(2, 3, 4), CLASS_MEANS, top_k=3, depth_focal=focal)
    for a, b, c in zip(plain, same, zoomed, strict=True):
        np.testing.assert_allclose(b["boxes3d"], a["boxes3d"], atol=1e-9)
        np.testing.assert_allclose(c["boxes3d"][:, 2], 2 * a["boxes3d"][:, 2], rtol=1e-9)


def test_centre_behind_surface_is_half_the_footprints_extent_along_the_ray():
    from distill3d.geometry.mono3d import centre_behind_surface, metric_depth

    dims = torch.tensor([[1.5, 1.6, 4.0], [1.5, 1.6, 4.0]])
    alpha = torch.tensor([0.0, math.pi / 2])  # seen side-on: extent along the ray = width; end-on: = length
    torch.testing.assert_close(centre_behind_surface(alpha, dims), torch.tensor([0.4, 1.0]))
    with pytest.raises(ValueError, match="focal_y"):
        metric_depth(torch.zeros(2), None, 700.0)
