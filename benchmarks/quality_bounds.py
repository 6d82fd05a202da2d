"""Reference rows for the quality benchmark: how far designed features go, and the protocol's ceiling.

Usage: python benchmarks/quality_bounds.py WORK [--json]

WORK is a `benchmarks/quality.py --work` folder (it holds labels.geojson and the
monthly and monthly-smooth feature cubes). Every row is scored exactly as quality.py scores (same
labelled pixels, the same spatially blocked folds, shots and draws), so the rows
sit beside its table:

- monthly features after a NaN-aware k x k spatial mean (k = 1, 3 = monthly-smooth, 5, 9):
  how much plain smoothing gives;
- the monthly-smooth features squeezed to 64 dims (a random projection + L2
  normalisation, and PCA): whether 64-d unit vectors can hold what they hold;
- S2 only / S1 only: where the information is;
- per-class parcel means (labelled parcels, so it USES THE LABELS: an upper bound
  for spatial aggregation, not a method);
- the labels themselves as one-hot features: the ceiling of the protocol.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def nan_box_mean(x: np.ndarray, k: int) -> np.ndarray:
    """NaN-aware k x k mean over (y, x) of a (y, x, band) array, edges replicated (k > 3; the
    3 x 3 product baseline is `aef features --kind monthly-smooth`)."""
    from scipy import ndimage

    ok = np.isfinite(x)
    total = ndimage.uniform_filter(np.where(ok, x, 0.0), size=(k, k, 1), mode="nearest")
    count = ndimage.uniform_filter(ok.astype(np.float32), size=(k, k, 1), mode="nearest")
    return total / np.maximum(count, 1e-6)


def parcel_means(x: np.ndarray, label_raster: np.ndarray) -> np.ndarray:
    """Each labelled parcel (4-connected pixels of one class) replaced by its mean vector."""
    from scipy import ndimage

    out = x.copy()
    for c in np.unique(label_raster[label_raster >= 0]):
        parts, n = ndimage.label(label_raster == c)
        for i in range(1, n + 1):
            m = parts == i
            out[m] = x[m].mean(axis=0)
    return out


def main() -> None:
    from aefcli.io.labels import pixel_of, read_geojson, to_pixels
    from aefcli.probe import encode_targets, geobox_of, open_source
    from aefcli.probe_eval import MAX, EvalSpec, blocked_folds, evaluate

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("work", type=Path)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--draws", type=int, default=5)
    p.add_argument("--cv", type=int, default=4)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()

    geo = read_geojson(a.work / "labels.geojson", "class")
    cube = open_source(a.work / "features-monthly.zarr", geo)
    grid = geobox_of(cube)
    labels = to_pixels(geo, grid, None, 0)
    rows, cols = pixel_of(grid.affine, labels.x, labels.y)
    y, classes, keep = encode_targets(labels.values, False, 20)
    rows, cols, y, x_m, y_m = rows[keep], cols[keep], y[keep], labels.x[keep], labels.y[keep]
    folds = [blocked_folds(x_m, y_m, 160.0, a.cv, r) for r in range(a.repeats)]  # quality.py's folds
    spec = EvalSpec(model="logistic", k=3, balanced=False, shots=(1, 10, MAX), draws=a.draws, seed=0)

    monthly = np.asarray(cube.values, np.float32)
    names = [str(b) for b in cube.coords["band"].values]
    s1 = np.array([n.split("_")[0] in ("VV", "VH") for n in names])
    smooth = np.asarray(open_source(a.work / "features-monthly-smooth.zarr", geo).values, np.float32)
    z = np.nan_to_num((smooth - np.nanmean(smooth, (0, 1))) / (np.nanstd(smooth, (0, 1)) + 1e-6))
    flat = z.reshape(-1, z.shape[-1])
    proj = z @ (np.random.default_rng(0).normal(size=(z.shape[-1], 64)) / np.sqrt(z.shape[-1]))
    pca = (flat - flat.mean(0)) @ np.linalg.svd(flat - flat.mean(0), full_matrices=False)[2][:64].T
    raster = np.full(grid.shape.yx, -1)
    raster[rows, cols] = y
    onehot = np.zeros((*grid.shape.yx, len(classes)), np.float32)
    onehot[rows, cols, y] = 1.0

    table = {
        "monthly (k = 1)": monthly,
        "monthly-smooth (k = 3)": smooth,
        "monthly k = 5": nan_box_mean(monthly, 5),
        "monthly k = 9": nan_box_mean(monthly, 9),
        "monthly-smooth, random 64-d projection + L2": proj / np.linalg.norm(proj, axis=-1, keepdims=True),
        "monthly-smooth, PCA 64": pca.reshape(*z.shape[:2], 64),
        "monthly-smooth, S2 bands only": smooth[..., ~s1],
        "monthly-smooth, S1 bands only": smooth[..., s1],
        "parcel means of monthly-smooth (uses labels)": parcel_means(smooth, raster),
        "ceiling: labels as one-hot features": onehot,
    }
    out = {}
    for name, feats in table.items():
        res = evaluate(feats[rows, cols].astype(np.float32), y, folds, spec, len(classes))
        out[name] = {s: round(res[s]["balanced_accuracy"]["mean"], 3) for s in res}
        if not a.json:
            print(f"{name:<48}" + "".join(f"{out[name][s]:>8.3f}" for s in out[name]), flush=True)
    if a.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
