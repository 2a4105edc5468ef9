"""CAD shapes of the real viewpoint datasets (point clouds, OFF meshes, Pascal3D+'s CAD .mat files).

CAD shape: normalised like the shapes world (centred on its bounding box, half-diagonal 1, so inside the
unit sphere) and sampled to ``n_points`` with ``numpy.random.default_rng([dataset id, seed, split id,
index])``: a PLY point cloud is subsampled without replacement (with replacement when it has fewer points);
a mesh is sampled area-weighted and also gives ``normals``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from distill3d.data.mesh_io import read_off, read_ply_points
from distill3d.data.viewpoint_common.isolation import loadmat_or_raise, mat_field, run_isolated
from distill3d.errors import DataFormatError

ShapeSource = Literal["auto", "pointcloud", "off", "mat"]

# ----------------------------------------------------------------------------------------------------------
# CAD shapes
# ----------------------------------------------------------------------------------------------------------


@dataclass
class CadShape:
    """A CAD model normalised into the unit sphere: ``points`` (cloud) or ``vertices`` + ``faces`` (mesh).

    ``center`` (3,) and ``scale`` (half-diagonal of the bounding box) map back: ``X = p·scale + center``.
    """

    path: Path
    center: np.ndarray
    scale: float
    points: np.ndarray | None = None
    vertices: np.ndarray | None = None
    faces: np.ndarray | None = None

    @property
    def is_mesh(self) -> bool:
        return self.faces is not None


def normalise_shape(path: Path, coordinates: np.ndarray) -> tuple[np.ndarray, float]:
    """Bounding-box centre (3,) and half-diagonal of ``coordinates`` (N, 3); raises for empty/flat input."""
    if coordinates.shape[0] == 0 or not np.all(np.isfinite(coordinates)):
        raise DataFormatError(path, "CAD shape has no points or non-finite coordinates")
    low, high = coordinates.min(axis=0), coordinates.max(axis=0)
    scale = float(np.linalg.norm(high - low) / 2)
    if scale <= 0:
        raise DataFormatError(path, "CAD shape has zero extent")
    return (low + high) / 2, scale


def load_cad_shape(path: Path, kind: Literal["pointcloud", "off", "mat"], model: int = 0) -> CadShape:
    """Read and normalise one CAD model; ``model`` is the 0-based entry of a ``CAD/<class>.mat`` struct array."""
    if kind == "pointcloud":
        points = read_ply_points(path)
        center, scale = normalise_shape(path, points)
        return CadShape(path, center, scale, points=((points - center) / scale).astype(np.float32))
    if kind == "off":
        vertices, faces = read_off(path)
    else:
        vertices, faces = _read_cad_mat(path, model)
    if faces.shape[0] == 0:
        raise DataFormatError(path, "CAD mesh has no faces")
    center, scale = normalise_shape(path, vertices[np.unique(faces)])
    return CadShape(path, center, scale, vertices=(vertices - center) / scale, faces=faces)


_CAD_MAT_CACHE: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}


def _read_cad_mat(path: Path, model: int) -> tuple[np.ndarray, np.ndarray]:
    """Entry ``model`` of Pascal3D+'s ``CAD/<class>.mat`` (variable ``<class>``: struct array with ``vertices``
    (V×3) and 1-based ``faces`` (F×3)) → vertices, 0-based faces."""
    key = str(path)
    if key not in _CAD_MAT_CACHE:
        _CAD_MAT_CACHE[key] = run_isolated(_parse_cad_mat, [path])[0]
    meshes = _CAD_MAT_CACHE[key]
    if not 0 <= model < len(meshes):
        raise DataFormatError(path, f"cad_index {model + 1} outside 1…{len(meshes)}")
    return meshes[model]


def _parse_cad_mat(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every mesh of a ``CAD/<class>.mat`` file, read in this process (the reading child's work)."""
    mat = loadmat_or_raise(path, "MATLAB CAD file")
    variable = mat.get(path.stem)
    if variable is None:
        raise DataFormatError(path, f"no variable '{path.stem}' (the class's CAD struct array)")
    models = [variable] if hasattr(variable, "_fieldnames") else list(np.asarray(variable, object).reshape(-1))
    meshes = []
    for number, entry in enumerate(models):
        where = f"{path.stem}({number + 1})"
        vertices, faces = mat_field(entry, "vertices"), mat_field(entry, "faces")
        if vertices is None or faces is None:
            raise DataFormatError(path, f"{where} lacks 'vertices' or 'faces'")
        try:
            vertices = np.asarray(vertices, np.float64).reshape(-1, 3)
            faces = np.asarray(faces, np.float64).reshape(-1, 3)
        except (TypeError, ValueError):
            raise DataFormatError(path, f"{where}: vertices and faces must be numeric N×3 arrays") from None
        if not np.all(np.isfinite(vertices)):
            raise DataFormatError(path, f"{where}.vertices hold non-finite values")
        if faces.size and (
            not np.all(np.isfinite(faces)) or np.any(faces != np.round(faces))
            or faces.min() < 1 or faces.max() > len(vertices)
        ):
            raise DataFormatError(path, f"{where}.faces must be 1-based indices of its {len(vertices)} vertices")
        meshes.append((vertices, faces.astype(np.int64) - 1))
    return meshes


@dataclass
class CadLibrary:
    """Locates (:meth:`path`) and caches a dataset's normalised CAD shapes by (class, 1-based cad index)."""

    root: Path
    kind: Literal["pointcloud", "off", "mat"]
    off_folder: str
    _cache: dict[tuple[str, int], CadShape] = field(default_factory=dict)

    def path(self, category: str, cad_index: int) -> Path:
        if self.kind == "pointcloud":
            return self.root / "pointcloud" / category / f"{cad_index:02d}" / "compressed.ply"
        if self.kind == "off":
            return self.root / self.off_folder / category / f"{cad_index:02d}.off"
        return self.root / "CAD" / f"{category}.mat"

    def shape(self, category: str, cad_index: int) -> CadShape:
        key = (category, int(cad_index))
        if key not in self._cache:
            self._cache[key] = load_cad_shape(self.path(category, cad_index), self.kind, int(cad_index) - 1)
        return self._cache[key]


def choose_shape_source(root: Path, requested: ShapeSource, off_folder: str, allow_mat: bool) -> str:
    """Resolve ``"auto"``: PoseFromShape's ``pointcloud/`` if present, else ``<off_folder>/`` meshes, else
    (Pascal3D+) ``CAD/<class>.mat``."""
    if requested != "auto":
        if requested == "mat" and not allow_mat:
            raise ValueError("shape_source='mat' is only available for Pascal3D+ (CAD/<class>.mat)")
        return requested
    if (root / "pointcloud").is_dir():
        return "pointcloud"
    off_dir = root / off_folder
    if off_dir.is_dir() and any(p.is_dir() for p in off_dir.iterdir()):
        return "off"
    if allow_mat and any((root / "CAD").glob("*.mat")):
        return "mat"
    raise DataFormatError(
        root,
        f"no CAD shapes found (looked for pointcloud/, {off_folder}/<class>/*.off"
        + (", CAD/<class>.mat" if allow_mat else "")
        + ")",
    )


