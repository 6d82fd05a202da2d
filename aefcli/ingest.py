"""`aef ingest`: STAC search -> one frame per (source, solar day) -> UTM cube (Zarr v3).

Each frame is loaded lazily with odc-stac onto the target GeoBox (bilinear for
reflectance/backscatter, nearest for SCL/QA), converted to physical units
(aefcli/bands.py: scale, S2 BOA_ADD_OFFSET, SAR linear -> dB), masked, and
stored chunk by chunk; its `frame_state` is set after its data, so a killed run
re-run with the same arguments redoes only unfinished frames and ends with the
same store. A frame whose assets stay broken after retries is skipped and
reported (PartialFailure, exit 1) while the rest is ingested.
"""

from __future__ import annotations

import logging
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aefcli import __version__, console
from aefcli.bands import SourceSpec, asset_key, resolve_collections, s2_offset, spec, valid_from_mask
from aefcli.errors import DataError, InputError, PartialFailure
from aefcli.io.stac import scrub, strip_credentials, with_retries
from aefcli.parse import parse_bbox, parse_period

log = logging.getLogger(__name__)
FRAME_RETRIES = 4
# GDAL retries 429/5xx and reset connections itself; frames are retried on top of that.
# (CPL_VSIL_CURL_NON_CACHED=/vsicurl/ made concurrent reads return whole bands as nodata: never set it.)
GDAL_HTTP = {"GDAL_HTTP_MAX_RETRY": 5, "GDAL_HTTP_RETRY_DELAY": 0.25, "GDAL_HTTP_TIMEOUT": 60}


@dataclass(frozen=True)
class IngestConfig:
    """A validated ingest request (bbox WGS84 W,S,E,N; period ISO start/end, end exclusive)."""

    stac: str
    collections: tuple[str, ...]
    bbox: str
    period: str
    out: Path
    crs: str = "auto"
    resolution: float = 10.0
    max_cloud: float | None = 80.0
    dry_run: bool = False
    preprocess: bool = True
    chunk: int = 512
    command: str = field(default_factory=lambda: shlex.join(["aef", *sys.argv[1:]]))

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "collections", tuple(c.strip() for c in self.collections if c.strip()))
        parse_bbox(self.bbox), parse_period(self.period)  # validate early, one-line errors
        resolve_collections(list(self.collections), self.stac)
        if self.max_cloud is not None and not 0 <= self.max_cloud <= 100:
            raise InputError(f"--max-cloud {self.max_cloud} must be within 0..100 (percent)")
        parent = self.out.resolve().parent
        if not self.dry_run and (not parent.is_dir() or not _writable(parent)):
            raise InputError(f"cannot write {self.out}: {parent} is missing or not writable")


def _writable(folder: Path) -> bool:
    import os

    return os.access(folder, os.W_OK | os.X_OK)


@dataclass(frozen=True)
class Frame:
    """One time step of one source: the items of a solar day (same orbit pass)."""

    time: np.datetime64
    items: tuple  # pystac.Item, sorted by id

    @property
    def item_id(self) -> str:
        return "+".join(it.id for it in self.items)


def plan_frames(items: list, lon: float) -> list[Frame]:
    """Group items by solar day (UTC + lon/15 h); frame time = earliest item datetime."""
    groups: dict[str, list] = {}
    for it in items:
        t = np.datetime64(it.datetime.replace(tzinfo=None), "ns")
        day = str((t + np.timedelta64(int(lon / 15 * 3600), "s")).astype("datetime64[D]"))
        groups.setdefault(day, []).append(it)
    frames = []
    for day in sorted(groups):
        its = sorted(groups[day], key=lambda i: i.id)
        t0 = min(np.datetime64(i.datetime.replace(tzinfo=None), "ns") for i in its)
        frames.append(Frame(t0, tuple(its)))
    return frames


def _band_keys(src: SourceSpec, item) -> dict[str, str]:
    """Canonical band (+ mask) -> asset key of this item; DataError names a missing band."""
    keys = {}
    for band in src.bands + ((src.mask,) if src.mask else ()):
        key = asset_key(src, band, item.assets)
        if key is None:
            raise DataError(f"item {item.id} has no asset for band {band} (tried {src.assets[band]})")
        keys[band] = key
    return keys


def _scale_offset(src: SourceSpec, item, key: str) -> tuple[float, float]:
    """DN -> physical: the asset's raster:bands scale/offset, else the source default (+ S2 baseline offset)."""
    rb = (item.assets[key].extra_fields.get("raster:bands") or [{}])[0]
    if "scale" in rb or "offset" in rb:
        return float(rb.get("scale", 1.0)), float(rb.get("offset", 0.0))
    offset = src.offset
    if src.name == "s2":
        offset += s2_offset(item.properties, np.datetime64(item.datetime.replace(tzinfo=None), "ns")) * src.scale
    return src.scale, offset


def _is_db(item, key: str) -> bool:
    rb = (item.assets[key].extra_fields.get("raster:bands") or [{}])[0]
    return str(rb.get("unit", "")).lower() in ("db", "decibel", "decibels")


def load_frame(src: SourceSpec, frame: Frame, geobox, chunk: int):
    """Lazy (raw (C, y, x) float32 physical units, valid (y, x) bool) dask arrays of one frame."""
    import dask.array as da
    import odc.stac

    first = frame.items[0]
    keys = _band_keys(src, first)
    resampling = {keys[b]: "bilinear" for b in src.bands}
    if src.mask:
        resampling[keys[src.mask]] = "nearest"
    nodata = src.nodata if src.nodata is not None else np.nan
    cfg = {"*": {"assets": {"*": {"nodata": nodata}}}}
    ds = odc.stac.load(list(frame.items), bands=list(resampling), geobox=geobox, chunks={"x": chunk, "y": chunk},
                       resampling=resampling, groupby="solar_day", fail_on_error=True, stac_cfg=cfg)
    layers, ok = [], None
    for band in src.bands:
        dn = ds[keys[band]].data[0].astype("float32")
        scale, offset = _scale_offset(src, first, keys[band])
        missing = da.isnan(dn) | (dn == nodata) if src.nodata is not None else da.isnan(dn)
        value = dn * np.float32(scale) + np.float32(offset)
        if src.kind == "sar" and not _is_db(first, keys[band]):
            value = 10 * da.log10(da.where(value > 0, value, np.nan))  # linear power -> dB
        layers.append(da.where(missing, np.float32(np.nan), value).astype("float32"))
    # One dask chunk per zarr chunk (all bands): per-band chunks would race on the same zarr chunk.
    raw = da.stack(layers, axis=0).rechunk({0: -1})
    valid = da.isfinite(raw).all(axis=0)
    if src.mask:
        mask = ds[keys[src.mask]].data[0]
        valid = valid & mask.map_blocks(lambda m: valid_from_mask(src, m), dtype=bool)
    return raw, valid


def provenance(frames: list[Frame], keys_of) -> list[dict[str, Any]]:
    """Per frame: time, item ids, datetimes, cloud cover and asset hrefs with credentials stripped."""
    out = []
    for f in frames:
        out.append({"time": str(f.time), "items": [{
            "id": it.id, "datetime": it.datetime.isoformat(), "cloud_cover": it.properties.get("eo:cloud_cover"),
            "hrefs": {k: strip_credentials(it.assets[k].href) for k in sorted(keys_of(it)) if k in it.assets},
        } for it in f.items]})
    return out


def _request(cfg: IngestConfig, sources: dict[str, str]) -> dict[str, Any]:
    return {"stac": strip_credentials(cfg.stac), "collections": sources, "bbox": parse_bbox(cfg.bbox).as_list(),
            "period": str(parse_period(cfg.period)), "crs_request": cfg.crs, "resolution": cfg.resolution,
            "max_cloud": cfg.max_cloud}


def run(cfg: IngestConfig) -> dict[str, Any]:
    """Search, plan, and (unless dry_run) write the cube; returns a summary dict.

    Raises PartialFailure (after completing the store) when frames were skipped.
    """
    from aefcli.grid import target_geobox
    from aefcli.io.cube import PENDING, SKIPPED, WRITTEN, read_cube_attrs
    from aefcli.io.cube_writer import SourceLayout, create_cube, CubeWriter
    from aefcli.io.stac import search

    bbox, period = parse_bbox(cfg.bbox), parse_period(cfg.period)
    sources = resolve_collections(list(cfg.collections), cfg.stac)
    geobox = target_geobox(bbox, cfg.crs, cfg.resolution)
    found = search(cfg.stac, list(sources.values()), bbox, period, cfg.max_cloud)
    frames = {s: plan_frames(found[c], bbox.centre[0]) for s, c in sources.items()}
    empty = [c for s, c in sources.items() if not frames[s]]
    if empty:
        raise DataError(f"no items of {empty} in bbox {bbox.as_list()} during {period} (max cloud {cfg.max_cloud}); widen the search")
    ny, nx = geobox.shape.y, geobox.shape.x
    summary: dict[str, Any] = {
        "out": str(cfg.out), "crs": f"EPSG:{geobox.crs.epsg}", "shape": [ny, nx],
        "transform": list(tuple(geobox.affine)[:6]),
        "frames": {s: len(f) for s, f in frames.items()},
        "items": {s: sum(len(fr.items) for fr in f) for s, f in frames.items()},
        "dates": {s: [str(fr.time)[:10] for fr in f] for s, f in frames.items()},
        "estimated_bytes": int(sum(len(f) * (len(spec(s).bands) * 4 + 1) * ny * nx for s, f in frames.items())),
    }
    if cfg.dry_run:
        return {**summary, "dry_run": True}

    specs = {s: spec(s) for s in sources}
    layouts = {s: SourceLayout(np.array([f.time for f in fr]), specs[s].bands, tuple(f.item_id for f in fr))
               for s, fr in frames.items()}
    request = _request(cfg, sources)
    attrs = {"request": request, "period": str(period), "bbox": bbox.as_list(), "aef_version": __version__,
             "command": scrub(cfg.command),
             "provenance": {s: provenance(fr, lambda it, s=s: _band_keys(specs[s], it).values()) for s, fr in frames.items()}}
    existing = read_cube_attrs(cfg.out) if cfg.out.exists() else None
    if cfg.out.exists() and existing is None:
        raise InputError(f"{cfg.out} exists and is not an aef cube; remove it or choose another --out")
    if existing is not None:
        same = existing.get("request") == request and existing.get("provenance") == attrs["provenance"]
        if not same:
            raise InputError(f"{cfg.out} holds a cube of a different request; remove it or choose another --out")
        if existing.get("complete"):
            return {**summary, "resumed": False, "already_complete": True, "skipped": existing.get("skipped", [])}
        writer = CubeWriter(cfg.out)
    else:
        writer = create_cube(cfg.out, layouts, geobox, attrs, chunk=cfg.chunk)

    import odc.stac

    odc.stac.configure_rio(cloud_defaults=True, **GDAL_HTTP)
    skipped = []
    for s, fr in frames.items():
        state = writer.frame_state(s)
        todo = [t for t in range(len(fr)) if state[t] == PENDING]
        for t in console.progress(todo, total=len(todo), desc=f"ingest {s}", unit="frame"):
            try:
                def _write(t=t):
                    raw, valid = load_frame(specs[s], fr[t], geobox, cfg.chunk)
                    writer.write_frame(s, t, raw, valid)
                with_retries(_write, f"{s} frame {fr[t].item_id}", retries=FRAME_RETRIES, retry_on=(Exception,))
                writer.mark(s, t, WRITTEN)
            except Exception as err:  # noqa: BLE001  (any read failure of one frame skips that frame)
                log.warning("skipping %s frame %s: %s", s, fr[t].item_id, scrub(err).splitlines()[0][:300])
                writer.skip_frame(s, t)
        skipped += [{"source": s, "item_id": fr[t].item_id} for t in np.flatnonzero(writer.frame_state(s) == SKIPPED)]
        if not (writer.frame_state(s) == WRITTEN).any():
            raise DataError(f"every {s} frame failed to load (e.g. {fr[0].item_id}); check that the asset URLs are reachable")
    if cfg.preprocess:
        from aefcli.preprocess import compute_norms

        for s, stats in compute_norms(cfg.out, list(frames)).items():
            writer.set_norm(s, stats)
    writer.finish(skipped=skipped)
    result = {**summary, "skipped": skipped}
    if skipped:
        ids = ", ".join(f"{k['source']}:{k['item_id']}" for k in skipped)
        raise PartialFailure(f"ingested {cfg.out} but skipped {len(skipped)} frame(s) with broken assets: {ids}")
    return result
