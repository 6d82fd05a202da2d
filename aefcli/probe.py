"""`aef probe`: sparse GeoJSON labels -> probe scores on one or more embedding cubes -> a COG map.

Flow: labels (any CRS) -> pixels of the first cube -> 64-d (or C-d) vectors sampled
from every cube -> spatially blocked CV with the n-shot protocol (`probe_eval`)
-> a probe fitted on all labels predicts the first cube chunk by chunk into a COG.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from aefcli import console
from aefcli.errors import DataError, InputError
from aefcli.probe_eval import MAX, MODELS, EvalSpec, blocked_folds, evaluate, fit, make_model


@dataclass(frozen=True)
class ProbeConfig:
    """Validated options of `aef probe`. block in metres (0 = unblocked); shots e.g. (1, 10, "max")."""

    labels: Path
    embeddings: tuple[Path, ...]
    out: Path | None = None
    field: str = "class"
    model: str = "logistic"
    k: int = 3
    cv: int = 5
    block: float = 640.0
    shots: tuple = (MAX,)
    draws: int = 5
    repeats: int = 1
    balanced: bool = False
    proba: bool = False
    preview: Path | None = None
    max_per_polygon: int | None = None
    min_per_class: int = 1
    seed: int = 0

    def __post_init__(self):
        if not self.embeddings:
            raise InputError("give at least one --embeddings cube (Zarr or GeoTIFF).")
        if self.model not in MODELS:
            raise InputError(f"--model must be one of {', '.join(MODELS)}, not {self.model!r}.")
        if self.cv < 2:
            raise InputError(f"--cv must be at least 2 folds, not {self.cv}.")
        if self.block < 0 or self.k < 1 or self.draws < 1 or self.repeats < 1 or self.min_per_class < 1:
            raise InputError("--block must be >= 0 metres and --k, --draws, --repeats, --min-per-class >= 1.")
        if self.out is not None and self.out.suffix.lower() not in (".tif", ".tiff"):
            raise InputError(f"--out must be a .tif file (a Cloud-Optimised GeoTIFF), not {self.out}.")
        if self.preview is not None and self.out is None:
            raise InputError("--preview needs --out (the preview is drawn from the map).")
        if self.preview is not None and self.model == "ridge":
            raise InputError("--preview draws class maps; a ridge (regression) map has no classes.")

    @property
    def regression(self) -> bool:
        return self.model == "ridge"

    @property
    def proba_path(self) -> Path | None:
        return self.out.with_name(self.out.stem + ".proba.tif") if self.out and self.proba else None


def open_source(path: Path, labels=None):
    """Any embedding source as a lazy (y, x, band) float32 DataArray with .rio.crs set.

    path: a Zarr store, a GeoTIFF, or a tile index (`aef index` output: collection.json
    or its folder). An index opens as one mosaic of the tiles the labels touch
    (aefcli.io.labels.GeoLabels; None: every tile), in the UTM zone holding most of them.
    """
    from aefcli.index import COLLECTION
    from aefcli.io.embedding_store import open_embeddings
    from aefcli.io.geotiff import open_geotiff_embeddings

    path = Path(path)
    if not path.exists():
        raise InputError(f"embedding cube {path} does not exist.")
    if path.suffix.lower() in (".tif", ".tiff"):
        return open_geotiff_embeddings(path)
    if path.name == COLLECTION or (path.is_dir() and (path / COLLECTION).is_file() and not (path / "zarr.json").exists()):
        return _open_index_source(path, labels)
    return open_embeddings(path)


def _open_index_source(path: Path, labels):
    """The index's tiles touched by the labels' WGS84 bbox, joined on one zone's grid."""
    import shapely
    from pyproj import Transformer

    from aefcli.index import open_index, open_mosaic
    from aefcli.io.embedding_store import open_embeddings

    entries = open_index(path)
    if not entries:
        raise DataError(f"the index {path} lists no finished tile; run `aef embed --tile ...` then `aef index`.")
    if labels is not None:
        w, s, e, n = shapely.union_all(labels.geoms).bounds
        area = shapely.box(*Transformer.from_crs(labels.crs, "EPSG:4326", always_xy=True).transform_bounds(w, s, e, n))

        def touched(b) -> bool:  # a tile bbox with W > E crosses the antimeridian
            boxes = [shapely.box(b[0], b[1], 180, b[3]), shapely.box(-180, b[1], b[2], b[3])] if b[0] > b[2] else [shapely.box(*b)]
            return any(area.intersects(x) for x in boxes)

        entries = [x for x in entries if touched(x.bbox)]
        if not entries:
            raise InputError(f"no tile of the index {path} lies under the labels (WGS84 bbox {[round(v, 5) for v in area.bounds]}); check their CRS and extent.")
    zones = [x.epsg for x in entries]
    epsg = max(sorted(set(zones)), key=zones.count)
    if len(set(zones)) > 1:
        console.say(f"labels span UTM zones {sorted(set(zones))}; probing the tiles of EPSG:{epsg} (most labels' tiles).")
    stores = [open_embeddings(x.store) for x in entries if x.epsg == epsg]
    x0, x1 = min(float(a.x.min()) for a in stores), max(float(a.x.max()) for a in stores)
    y0, y1 = min(float(a.y.min()) for a in stores), max(float(a.y.max()) for a in stores)
    mosaic = open_mosaic(path, epsg)
    return mosaic.sel(x=slice(x0, x1), y=slice(y1, y0))  # y descends: north first


def geobox_of(arr):
    from odc.geo.geobox import GeoBox

    return GeoBox((arr.sizes["y"], arr.sizes["x"]), arr.rio.transform(), arr.rio.crs)


def sample(arr, x: np.ndarray, y: np.ndarray, crs) -> np.ndarray:
    """Vectors (N, C) float32 at points (x, y) given in `crs`; NaN rows where outside the cube."""
    from pyproj import Transformer

    from aefcli.io.labels import pixel_of

    if arr.rio.crs != crs:
        x, y = Transformer.from_crs(crs, arr.rio.crs, always_xy=True).transform(x, y)
    rows, cols = pixel_of(arr.rio.transform(), x, y)
    inside = (rows >= 0) & (rows < arr.sizes["y"]) & (cols >= 0) & (cols < arr.sizes["x"])
    out = np.full((x.size, arr.sizes["band"]), np.nan, np.float32)
    if inside.any():
        out[inside] = np.asarray(arr.data.vindex[rows[inside], cols[inside]].compute(), dtype=np.float32)
    return out


def encode_targets(values: np.ndarray, regression: bool, min_per_class: int) -> tuple[np.ndarray, list[str] | None, np.ndarray]:
    """(targets, class names or None, keep mask). Classes sort numerically when all are numbers."""
    if regression:
        try:
            return np.array([float(v) for v in values], np.float64), None, np.ones(values.size, bool)
        except (TypeError, ValueError):
            bad = next(v for v in values if not _is_number(v))
            raise InputError(f"--model ridge needs a numeric target, but the label field holds {bad!r}; use --model logistic for classes.") from None
    names = np.array([str(v) for v in values])
    uniq, counts = np.unique(names, return_counts=True)
    kept = uniq[counts >= min_per_class]
    order = sorted(kept, key=lambda s: (0, float(s), s) if _is_number(s) else (1, 0.0, s))
    keep = np.isin(names, order)
    index = {n: i for i, n in enumerate(order)}
    return np.array([index.get(n, -1) for n in names]), list(order), keep


def _is_number(v) -> bool:
    try:
        float(v)
        return not isinstance(v, bool)
    except (TypeError, ValueError):
        return False


def run(cfg: ProbeConfig) -> dict:
    """Score every cube on the same folds and write the map of the first. Returns the result dict."""
    from aefcli.io.geotiff import remove_quietly
    from aefcli.io.labels import read_geojson, to_pixels

    geo = read_geojson(cfg.labels, cfg.field)
    cubes = [open_source(p, geo) for p in cfg.embeddings]
    grid = geobox_of(cubes[0])
    labels = to_pixels(geo, grid, cfg.max_per_polygon, cfg.seed)
    if labels.x.size == 0:
        raise InputError(f"all {labels.n_features} labels fall outside the cube {cfg.embeddings[0]}; check their CRS and extent.")
    feats = [sample(c, labels.x, labels.y, grid.crs) for c in cubes]
    valid = np.logical_and.reduce([np.isfinite(f).all(axis=1) for f in feats])
    y, classes, keep = encode_targets(labels.values, cfg.regression, cfg.min_per_class)
    use = valid & keep
    counts = {"features": labels.n_features, "outside": labels.n_outside, "pixels": int(labels.x.size),
              "nodata": int((~valid).sum()), "rare_class": int((valid & ~keep).sum()), "used": int(use.sum())}
    if counts["nodata"] or counts["outside"]:
        console.say(f"labels: {counts['outside']} feature(s) outside the cube, {counts['nodata']} pixel(s) on nodata; not used.")
    if not use.any():
        raise DataError(f"none of the {labels.x.size} labelled pixels has a valid vector in every cube; nothing to fit.")
    y = y[use]
    if classes is not None:
        present = np.unique(y)
        if present.size < 2:
            raise InputError(f"the labels hold only one class ({classes[int(present[0])]}) in field {cfg.field!r}; a probe needs at least two.")
        remap = np.full(len(classes), -1)
        remap[present] = np.arange(present.size)
        y, classes = remap[y], [classes[i] for i in present]
    if y.size < cfg.cv:
        raise InputError(f"only {y.size} usable labelled pixels for --cv {cfg.cv} folds; add labels or lower --cv.")
    x_m, y_m = labels.x[use], labels.y[use]
    folds = [blocked_folds(x_m, y_m, cfg.block, cfg.cv, cfg.seed + r) for r in range(cfg.repeats)]
    spec = EvalSpec(model=cfg.model, k=cfg.k, balanced=cfg.balanced, shots=cfg.shots, draws=cfg.draws, seed=cfg.seed)
    n_classes = None if classes is None else len(classes)
    scores = []
    for path, f in zip(cfg.embeddings, feats):
        scores.append({"embeddings": str(path), "bands": int(f.shape[1]), "scores": evaluate(f[use], y, folds, spec, n_classes)})
    result = {"labels": str(cfg.labels), "field": cfg.field, "task": "regression" if classes is None else "classification",
              "classes": classes, "class_counts": None if classes is None else np.bincount(y, minlength=len(classes)).tolist(),
              "counts": counts, "config": _config_json(cfg), "results": scores, "map": None}
    if cfg.out is not None:
        from aefcli.probe_map import write_map

        try:
            model = fit(make_model(cfg.model, cfg.k, cfg.balanced, cfg.seed), feats[0][use], y)
            write_map(cfg, cubes[0], model, classes, result)
            if cfg.preview is not None:
                from aefcli.io.geotiff import write_preview

                write_preview(cfg.out, cfg.preview, classes)
        except BaseException:
            remove_quietly(cfg.out, cfg.proba_path, cfg.preview)
            raise
        result["map"] = {"path": str(cfg.out), "proba": str(cfg.proba_path) if cfg.proba_path else None,
                         "preview": str(cfg.preview) if cfg.preview else None}
    return result


def _config_json(cfg: ProbeConfig) -> dict:
    return json.loads(json.dumps(asdict(cfg), default=str))


def format_table(result: dict) -> str:
    """The readable score table (mean ± std over folds and draws) for stderr."""
    reg = result["task"] == "regression"
    metrics = ("r2", "rmse") if reg else ("balanced_accuracy", "macro_f1")
    shots = list(result["results"][0]["scores"])
    head = f"{'embeddings':<32} " + " ".join(f"{m[:8] + '@' + s:>20}" for s in shots for m in metrics)
    lines = [head, "-" * len(head)]
    for r in result["results"]:
        cells = []
        for s in shots:
            for m in metrics:
                v = r["scores"][s][m]
                cell = "n/a" if v["mean"] is None else f"{v['mean']:.3f} ± {v['std']:.3f}"
                cells.append(f"{cell:>20}")
        lines.append(f"{Path(r['embeddings']).name[:32]:<32} " + " ".join(cells))
    if not reg:
        best = result["results"][0]["scores"][shots[-1]]
        recall = ", ".join(f"{c}: " + ("n/a" if r is None else f"{r:.2f}") for c, r in zip(result["classes"], best["per_class_recall"]))
        lines.append(f"per-class recall ({Path(result['results'][0]['embeddings']).name}, {shots[-1]}-shot): {recall}")
    c = result["counts"]
    lines.append(f"labels: {c['used']} pixels used of {c['pixels']} ({c['features']} features, {c['outside']} outside, {c['nodata']} on nodata)")
    return "\n".join(lines)
