"""`write_sample_world`: the whole synthetic world on disk, written atomically."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aefcli import __version__
from aefcli.console import progress
from aefcli.errors import InputError
from aefcli.sampleworld import dates as D
from aefcli.sampleworld.classes import CLASSES, NODATA_CLASS, S2_BANDS, class_names
from aefcli.sampleworld.cog import write_cog
from aefcli.sampleworld.config import WorldConfig
from aefcli.sampleworld.landcover import LandCover, class_fractions, make_landcover
from aefcli.sampleworld.optical import NODATA, s2_scene
from aefcli.sampleworld.radar import s1_scene
from aefcli.sampleworld.stac import S1_COLLECTION, S2_COLLECTION, footprint, s1_item, s1_item_id, s2_item, s2_item_id, write_catalog
from aefcli.sampleworld.vectors import label_points, text_points, write_geojson

MARKER = "world.json"  # marks a directory as a sample world (safe to overwrite)


@dataclass(frozen=True)
class SampleWorld:
    """Where a written sample world lies and what it holds (paths are absolute)."""

    root: Path
    catalog: Path  # STAC catalog.json (self-contained, relative links)
    labels: Path  # labels.geojson: labelled points, WGS84, property `class`
    truth: Path  # truth.tif: class id per 10 m pixel (COG, colour table, names in tags)
    text: Path  # text.geojson: Point features with a `text` description
    bbox_wgs84: tuple[float, float, float, float]  # W, S, E, N degrees
    class_names: dict[int, str]  # class id -> name (0 = nodata, not listed)
    s2_dates: tuple[dt.datetime, ...]
    s1_dates: tuple[dt.datetime, ...]
    config: WorldConfig


def write_sample_world(
    out_dir: str | Path,
    size: int = 256,
    dates: int = 24,
    seed: int = 0,
    year: int = 2024,
    crs: str = "EPSG:32631",
    labels_per_class: int = 30,
) -> SampleWorld:
    """Write the synthetic world for `seed` into `out_dir` (same arguments -> identical files).

    size: pixels per side at 10 m (multiple of 16); dates: S2 acquisitions over `year`
    (S1 gets as many on its own orbit). The directory appears complete or not at all:
    everything is built in a sibling temporary directory and renamed at the end.
    An existing non-empty `out_dir` is replaced only if it holds a previous sample world.
    """
    cfg = WorldConfig(size=size, dates=dates, seed=seed, year=year, crs=crs, labels_per_class=labels_per_class)
    out = Path(out_dir).expanduser().absolute()
    tmp = _claim(out)
    try:
        world = _write(tmp, cfg)
        _swap(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _relocate(world, tmp, out)


def _claim(out: Path) -> Path:
    """Check `out` can be (re)written and create the temporary sibling to build in."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a directory: give a new directory for the sample world.")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise InputError(f"{out} is not empty and holds no sample world: give a new or empty directory.")
    tmp = out.parent / f".{out.name}.{os.getpid()}.partial"
    existing = next((p for p in out.parents if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise InputError(f"{existing} is a file, not a directory: give a directory path for the sample world.")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        probe = tmp / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        reason = err.strerror or str(err)
        raise InputError(f"cannot write in {out.parent} ({reason}): choose a writable directory for the sample world.") from None
    return tmp


def _swap(tmp: Path, out: Path) -> None:
    old = out.parent / f".{out.name}.{os.getpid()}.old"
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def _relocate(world: SampleWorld, tmp: Path, out: Path) -> SampleWorld:
    move = lambda p: out / p.relative_to(tmp)  # noqa: E731
    return SampleWorld(out, move(world.catalog), move(world.labels), move(world.truth), move(world.text),
                       world.bbox_wgs84, world.class_names, world.s2_dates, world.s1_dates, world.config)


def _write(root: Path, cfg: WorldConfig) -> SampleWorld:
    lc = make_landcover(cfg.size, cfg.seed)
    bbox, geom = footprint(cfg)
    lon = (bbox[0] + bbox[2]) / 2
    s2_items, s1_items = [], []
    s2_days, s1_days = D.s2_days(cfg.year, cfg.dates, cfg.seed), D.s1_days(cfg.year, cfg.dates)
    for doy in progress(s2_days, total=len(s2_days), desc="sentinel-2 scenes", unit="scene"):
        when = D.to_datetime(cfg.year, int(doy), D.S2_LOCAL_HOUR, lon, jitter_s=int(doy) % 60)
        offset = D.has_boa_offset(when.date())
        scene = s2_scene(lc, int(doy), cfg.seed, offset)
        folder = root / S2_COLLECTION / s2_item_id(cfg, when)
        folder.mkdir(parents=True)
        files = {}
        for key, name, res, _, _ in S2_BANDS:
            files[key] = str(_band_cog(folder / f"{name}.tif", scene.bands[key], cfg, res, NODATA))
        files["scl"] = str(write_cog(folder / "SCL.tif", scene.scl, cfg.geobox(20).affine[:6], cfg.crs, 0, "nearest"))
        s2_items.append(s2_item(cfg, when, scene.stats, D.processing_baseline(when.date()), offset, files))
    for doy in progress(s1_days, total=len(s1_days), desc="sentinel-1 scenes", unit="scene"):
        when = D.to_datetime(cfg.year, int(doy), D.S1_LOCAL_HOUR, lon, jitter_s=int(doy) % 60)
        scene = s1_scene(lc, int(doy), cfg.seed)
        folder = root / S1_COLLECTION / s1_item_id(when)
        folder.mkdir(parents=True)
        files = {k: str(_band_cog(folder / f"{k}.tif", getattr(scene, k), cfg, 10, float("nan"))) for k in ("vv", "vh")}
        s1_items.append(s1_item(cfg, when, files))
    catalog = write_catalog(root, cfg, s2_items, s1_items)
    truth = _write_truth(root / "truth.tif", lc, cfg)
    labels = write_geojson(root / "labels.geojson", label_points(lc, cfg))
    text = write_geojson(root / "text.geojson", text_points(lc, cfg))
    world = SampleWorld(root, catalog, labels, truth, text, tuple(bbox), class_names(),
                        tuple(i.datetime for i in s2_items), tuple(i.datetime for i in s1_items), cfg)
    _write_marker(root / MARKER, world, lc)
    return world


def _band_cog(path: Path, data: np.ndarray, cfg: WorldConfig, res: int, nodata: float) -> Path:
    return write_cog(path, data, cfg.geobox(res).affine[:6], cfg.crs, nodata)


def _write_truth(path: Path, lc: LandCover, cfg: WorldConfig) -> Path:
    colours = {NODATA_CLASS: (0, 0, 0, 0), **{c.id: (*c.colour, 255) for c in CLASSES}}
    tags = {f"CLASS_{c.id}": c.name for c in CLASSES}
    tags["AEF_CLASSES"] = json.dumps(class_names())
    tags["AEF_CONFIG"] = json.dumps(cfg.to_dict())
    tags["AEF_VERSION"] = __version__
    return write_cog(path, lc.classes, cfg.transform, cfg.crs, NODATA_CLASS, "nearest", colormap=colours,
                     tags=tags, descriptions=("land cover class",))


def _write_marker(path: Path, world: SampleWorld, lc: LandCover) -> None:
    """The resolved config and a summary, so the directory says how it was made."""
    doc = {
        "aef:sample_world": {"format": 1, "aef_version": __version__, "config": world.config.to_dict()},
        "bbox": list(world.bbox_wgs84),
        "classes": {str(k): v for k, v in world.class_names.items()},
        "class_fractions": {k: round(v, 6) for k, v in class_fractions(lc).items()},
        "collections": {S2_COLLECTION: [d.isoformat() for d in world.s2_dates],
                        S1_COLLECTION: [d.isoformat() for d in world.s1_dates]},
    }
    path.write_text(json.dumps(doc, indent=1) + "\n")
