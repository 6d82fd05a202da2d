"""Embedding quality on a real WorldCereal patch: aef vs designed features, AEF n-shot protocol.

Usage: python benchmarks/quality.py PATCH_DIR [--checkpoint CKPT] [--recipe cpu-q12-s] [--steps N] [--json]

The whole chain runs through the real local services: the patch's NetCDF files
become COGs + a static STAC catalog (examples/worldcereal_to_stac.py), served as a
STAC API (rustac) with a Range file server; `aef ingest` reads them into a cube;
`aef train` (recipe, no labels) or --checkpoint gives the model; `aef embed` embeds
the label year; `aef features` builds the three baselines; `aef probe` scores every
cube on the same spatially blocked folds (16 x 16 px blocks, --repeats fold
assignments, --draws n-shot draws) with the crop-type raster (CT, 0 = none;
classes with fewer than --min-class labelled pixels dropped) as GeoJSON points.
A model with random weights (same config) is the control. The row `ceiling` scores
the labels themselves (one-hot per pixel) on the same folds: the best any feature set
can reach under this protocol (a class whose only parcel falls in the test fold cannot
be learnt); it is context for the cuts, never a baseline.

Prints one table of balanced accuracy (mean ± std over folds and draws) per method
and shot count, and the relative error cut of aef vs the best baseline:
cut = 1 - (1 - BA_aef) / (1 - BA_best). --json prints the result as one JSON line.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BASELINES = ("median", "monthly", "monthly-smooth")
BLOCK_PX = 16


def _converter():
    spec = importlib.util.spec_from_file_location("worldcereal_to_stac", ROOT / "examples" / "worldcereal_to_stac.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _label_ds(patch: Path):
    import xarray as xr

    files = sorted(glob.glob(str(patch / "OUTPUT_*_10m_*.nc")))
    if not files:
        raise SystemExit(f"{patch} has no label file OUTPUT_*_10m_*.nc")
    return xr.open_dataset(files[0], mask_and_scale=False), files[0]


def label_year(patch: Path) -> int:
    """Calendar year of the labels: the year of the label file's end date (attribute, else file name)."""
    ds, path = _label_ds(patch)
    end = ds.attrs.get("end_date") or Path(path).stem.split("_")[-1]
    return int(str(end)[:4])


def write_labels(patch: Path, out: Path, field: str = "CT", min_class: int = 20) -> dict[str, Any]:
    """The label raster as GeoJSON points (pixel centres, the patch's UTM CRS, property `class`).

    0 = no label; classes with fewer than `min_class` pixels are dropped. Returns
    {"path", "crs", "counts": {class: pixels}, "dropped": {class: pixels}}.
    """
    ds, _ = _label_ds(patch)
    raster = ds[field].values.astype(np.int64)
    fill = int(ds[field].attrs.get("_FillValue", 0))
    xs, ys = ds.x.values, ds.y.values  # pixel centres
    codes, counts = np.unique(raster[raster != fill], return_counts=True)
    keep = {int(c): int(n) for c, n in zip(codes, counts) if n >= min_class}
    dropped = {int(c): int(n) for c, n in zip(codes, counts) if n < min_class}
    rows, cols = np.nonzero(np.isin(raster, list(keep)))
    epsg = int(ds.attrs["epsg"])
    feats = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [float(xs[c]), float(ys[r])]},
              "properties": {"class": int(raster[r, c])}} for r, c in zip(rows, cols)]
    doc = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": f"EPSG:{epsg}"}},
           "features": feats}
    out.write_text(json.dumps(doc))
    return {"path": str(out), "crs": f"EPSG:{epsg}", "counts": keep, "dropped": dropped}


def ceiling_store(labels: Path, like: Path, out: Path) -> Path:
    """A store of one-hot labels (one band per class, 0 where unlabelled) on the grid of `like`."""
    from aefcli.io import embedding_store as es
    from aefcli.io.labels import pixel_of
    from aefcli.probe import geobox_of, open_source

    grid = geobox_of(open_source(like))
    doc = json.loads(Path(labels).read_text())
    xy = np.array([f["geometry"]["coordinates"] for f in doc["features"]], float)
    values = np.array([f["properties"]["class"] for f in doc["features"]])
    classes = np.unique(values)
    rows, cols = pixel_of(grid.affine, xy[:, 0], xy[:, 1])
    onehot = np.zeros((*grid.shape.yx, classes.size), np.float32)
    onehot[rows, cols, np.searchsorted(classes, values)] = 1.0
    attrs = {"kind": "features", "features": "label-ceiling", "model": None, "command": "benchmarks/quality.py"}
    es.create_store(out, grid, [f"class_{c}" for c in classes], "float32", max(onehot.shape[:2]), attrs, overwrite=True)
    es.write_block(out, onehot, 0, 0)
    es.mark_complete(out)
    return out


def patch_area(patch: Path) -> tuple[str, str, str]:
    """(WGS84 bbox "W,S,E,N" just inside the patch, its UTM CRS, ingest period "start/end") of a patch."""
    from pyproj import Transformer

    ds, _ = _label_ds(patch)
    epsg = int(ds.attrs["epsg"])
    x0, y0, x1, y1 = (float(v) for v in ds.attrs["bounds"])
    inset = 1.0  # metres: the grid then snaps to the patch's own 10 m pixels
    to_ll = Transformer.from_crs(epsg, 4326, always_xy=True)
    lon, lat = to_ll.transform([x0 + inset, x1 - inset, x1 - inset, x0 + inset], [y0 + inset, y0 + inset, y1 - inset, y1 - inset])
    bbox = f"{max(lon[0], lon[3])},{max(lat[0], lat[1])},{min(lon[1], lon[2])},{min(lat[2], lat[3])}"
    end = np.datetime64(str(ds.attrs["end_date"])[:10]) + np.timedelta64(1, "D")
    return bbox, f"EPSG:{epsg}", f"{str(ds.attrs['start_date'])[:10]}/{end}"


def random_checkpoint(like: Path, out: Path, seed: int = 12345) -> Path:
    """A checkpoint with the same config, bands and statistics as `like` but freshly initialised weights."""
    import torch

    from aefcli.checkpoint import load_checkpoint, save_checkpoint
    from model import EmbeddingFieldModel

    ckpt = load_checkpoint(like)
    torch.manual_seed(seed)
    model = EmbeddingFieldModel(ckpt.model_cfg())
    return save_checkpoint(out, model, ckpt.model_config, ckpt.norm, ckpt.bands, {"random_init_seed": seed}, 0)


def _stage(name: str, t0: float, timings: dict) -> None:
    timings[name] = round(time.perf_counter() - t0, 1)
    print(f"[quality] {name}: {timings[name]} s", file=sys.stderr, flush=True)


def run_benchmark(patch: Path, work: Path, checkpoint: Path | None = None, recipe: str = "cpu-q12-s",
                  steps: int | None = None, repeats: int = 3, draws: int = 5, cv: int = 4,
                  min_class: int = 20, probe_model: str = "logistic", threads: int = 0) -> dict[str, Any]:
    """Run the chain in `work` (reused: finished stages are skipped); returns the result dict."""
    import torch

    from aefcli import embed, features, ingest, probe
    from aefcli.errors import PartialFailure
    from aefcli.io.local_services import serve_catalog
    from aefcli.probe_eval import MAX
    from aefcli.checkpoint import load_checkpoint
    from aefcli.recipes import train, train_config

    if threads:
        torch.set_num_threads(threads)
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    year = label_year(patch)
    bbox, crs, span = patch_area(patch)
    labels = write_labels(patch, work / "labels.geojson", min_class=min_class)
    catalog = work / "stac" / "catalog.json"
    t0 = time.perf_counter()
    if not catalog.exists():
        _converter().convert(patch, work / "stac")
    _stage("convert", t0, timings)
    cube = work / "cube.zarr"
    t0 = time.perf_counter()
    from aefcli.io.cube import read_cube_attrs

    done = cube.exists() and (read_cube_attrs(cube) or {}).get("complete")
    with serve_catalog(catalog) as served:  # the served URLs change per run: a finished cube is reused as is
        try:
            if done:
                raise StopIteration
            ingest.run(ingest.IngestConfig(stac=served.api_url, collections=("s2", "s1"), bbox=bbox, period=span,
                                           out=cube, crs=crs, max_cloud=None))
        except StopIteration:
            pass
        except PartialFailure as err:
            print(f"[quality] warning: {err}", file=sys.stderr)
    _stage("ingest", t0, timings)
    t0 = time.perf_counter()
    trained = checkpoint is None
    if trained:
        cfg = train_config(recipe, [cube], work / f"run-{recipe}", steps=steps)
        train(cfg)  # no labels: the probe labels are used below, only to score
        checkpoint = cfg.out / "checkpoint.safetensors"
    _stage("train", t0, timings)
    control = random_checkpoint(checkpoint, work / "random" / "checkpoint.safetensors")
    period = f"{year}-01-01/{year + 1}-01-01"
    cubes: dict[str, Path] = {}
    # embed with windows of the size the model was trained on (its space path saw that many tokens),
    # half of each overlapping the next: every pixel is blended mostly from windows that see it far
    # from their edges (a smoothed field, ModelConfig.smooth_radius, is replicated at a window's edge)
    window = int(min(64, max(16, load_checkpoint(checkpoint).train_args.get("window", 64))))
    t0 = time.perf_counter()
    for name, ckpt in (("aef", checkpoint), ("aef-random", control)):
        cubes[name] = work / f"{name}.zarr"
        embed.run(embed.EmbedConfig(checkpoint=Path(ckpt), out=cubes[name], period=period, cube=cube, bbox=bbox,
                                    window=window, overlap=window // 2, chunk=64, batch_size=4, overwrite=True,
                                    device="cpu"))
    _stage("embed", t0, timings)
    t0 = time.perf_counter()
    for kind in BASELINES:
        cubes[kind] = work / f"features-{kind}.zarr"
        features.run(features.FeaturesConfig(cube=cube, period=period, kind=kind, out=cubes[kind], overwrite=True))
    _stage("features", t0, timings)
    cubes["ceiling"] = ceiling_store(Path(labels["path"]), cubes["monthly"], work / "ceiling.zarr")
    t0 = time.perf_counter()
    names = list(cubes)
    res = probe.run(probe.ProbeConfig(labels=Path(labels["path"]), embeddings=tuple(cubes[n] for n in names),
                                      field="class", model=probe_model, cv=cv, block=BLOCK_PX * 10.0,
                                      shots=(1, 10, MAX), draws=draws, repeats=repeats, min_per_class=min_class))
    _stage("probe", t0, timings)
    scores = {n: {s: r["scores"][s]["balanced_accuracy"] for s in r["scores"]} for n, r in zip(names, res["results"])}
    return {"patch": str(patch), "label_year": year, "period": period, "checkpoint": str(checkpoint),
            "recipe": recipe if trained else None, "embed_window": window, "probe": probe_model,
            "classes": res["classes"], "class_counts": res["class_counts"], "dropped": labels["dropped"],
            "folds": {"cv": cv, "repeats": repeats, "draws": draws, "block_px": BLOCK_PX},
            "balanced_accuracy": scores, "error_cut": error_cuts(scores), "seconds": timings}


def error_cuts(scores: dict[str, dict[str, dict]]) -> dict[str, dict[str, Any]]:
    """Per shot count: the best baseline, and 1 - err_aef / err_best (err = 1 - mean balanced accuracy)."""
    out = {}
    for shot in scores["aef"]:
        best = max(BASELINES, key=lambda b: scores[b][shot]["mean"])
        err_aef, err_best = 1 - scores["aef"][shot]["mean"], 1 - scores[best][shot]["mean"]
        out[shot] = {"best_baseline": best, "cut": (1 - err_aef / err_best) if err_best > 0 else None}
    return out


def format_table(result: dict[str, Any]) -> str:
    """The readable table: balanced accuracy mean ± std per method and shot count, then the error cuts."""
    shots = list(result["error_cut"])
    lines = [f"{'method':<16}" + "".join(f"{s + '-shot':>18}" for s in shots)]
    for name, sc in result["balanced_accuracy"].items():
        lines.append(f"{name:<16}" + "".join(f"{sc[s]['mean']:>11.3f} ± {sc[s]['std']:.3f}" for s in shots))
    cuts = result["error_cut"]
    lines.append(f"{'error cut':<16}" + "".join(
        f"{(cuts[s]['cut'] or 0) * 100:>+17.1f}%" for s in shots))
    lines.append("vs best baseline: " + ", ".join(f"{s}: {cuts[s]['best_baseline']}" for s in shots))
    return "\n".join(lines)


def main() -> None:
    from aefcli.recipes import recipe_names

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("patch_dir", type=Path)
    p.add_argument("--checkpoint", type=Path, default=None, help="score this checkpoint instead of training")
    p.add_argument("--recipe", default="cpu-q12-s", choices=recipe_names(), help="training recipe (aefcli/recipes.py)")
    p.add_argument("--steps", type=int, default=None, help="override the recipe's training steps")
    p.add_argument("--work", type=Path, default=None, help="working folder (kept; finished stages are reused)")
    p.add_argument("--repeats", type=int, default=3, help="random blocked fold assignments")
    p.add_argument("--draws", type=int, default=5, help="n-shot draws per fold")
    p.add_argument("--cv", type=int, default=4, help="folds per assignment")
    p.add_argument("--probe", default="logistic", choices=("logistic", "knn"))
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON line")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="aef-quality-") as tmp:
        work = a.work or Path(tmp)
        res = run_benchmark(a.patch_dir, work, a.checkpoint, a.recipe, a.steps, a.repeats, a.draws, a.cv,
                            probe_model=a.probe, threads=a.threads)
    print(format_table(res), file=sys.stderr)
    print(json.dumps(res) if a.json else format_table(res))


if __name__ == "__main__":
    main()
