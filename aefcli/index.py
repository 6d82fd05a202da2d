"""An index of per-tile embedding stores: a STAC Collection, one Item per finished store.

`build_index(OUT_DIR)` scans `OUT_DIR/*.zarr` (embedding stores, formats.md
section 4), skips the incomplete ones and writes, in OUT_DIR:

    collection.json         STAC Collection (spatial/temporal extent of all items)
    items/<ID>.json         one STAC Item per complete store: bbox, geometry, proj:code,
                            proj:shape, proj:transform, period, model hash;
                            asset `embedding` -> ../<ID>.zarr
    cog/<ID>.tif            (cog=True) a Cloud-Optimised GeoTIFF mirror of the store
    mosaic-<EPSG>.vrt       (cog=True) one GDAL VRT per UTM zone over the mirrors

Why mirrors: GDAL 3.10 (the one in the rasterio wheels) reads only the early
Zarr v3 draft ("endian" codec) and refuses zarr-python 3 stores ("Unsupported
codec: bytes"), so a VRT cannot point at the Zarr stores themselves. Python
readers need no mirror: `open_mosaic` joins the stores of one zone lazily.
Every file is written to a temporary name and renamed; the collection last.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aefcli.errors import DataError, InputError
from aefcli.io import embedding_store as es

COLLECTION = "collection.json"
PROJ_SCHEMA = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"


@dataclass(frozen=True)
class IndexEntry:
    """One finished store as listed by the index."""

    id: str
    store: Path  # the Zarr embedding store
    epsg: int
    bbox: tuple[float, float, float, float]  # WGS84 W,S,E,N (W > E across the antimeridian)
    period: str | None
    cog: Path | None = None


@dataclass(frozen=True)
class IndexResult:
    collection: Path
    items: tuple[str, ...]
    skipped: tuple[str, ...]  # incomplete or unreadable stores, with the reason
    vrts: tuple[Path, ...]


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _wgs84(geobox) -> tuple[dict, list[float]]:
    """GeoJSON geometry and bbox of a UTM GeoBox; split at 180 degrees (bbox W > E) when it crosses it."""
    import shapely

    geom = geobox.extent.to_crs("EPSG:4326", wrapdateline=True).geom
    parts = list(geom.geoms) if hasattr(geom, "geoms") else [geom]
    w, s, e, n = geom.bounds
    if len(parts) > 1 and w <= -180 + 1e-9 and e >= 180 - 1e-9:
        w = min(p.bounds[0] for p in parts if p.bounds[0] > -180 + 1e-9)
        e = max(p.bounds[2] for p in parts if p.bounds[2] < 180 - 1e-9)
    return shapely.geometry.mapping(geom), [w, s, e, n]


def _model_hash(model: Any) -> str | None:
    if isinstance(model, dict):
        return model.get("model_hash") or model.get("hash")
    return None if model is None else str(model)


def _item(store: Path, attrs: dict, geobox, cog: Path | None):
    import pystac

    from aefcli.tiles import Tile, tile_from_id

    try:
        tile: Tile | None = tile_from_id(store.stem)
    except InputError:
        tile = None
    geometry, bbox = _wgs84(geobox)
    start, _, end = (attrs.get("period") or "/").partition("/")
    a = geobox.affine
    props = {
        "start_datetime": f"{start}T00:00:00Z" if len(start) == 10 else start or None,
        "end_datetime": f"{end}T00:00:00Z" if len(end) == 10 else end or None,
        "proj:code": f"EPSG:{geobox.crs.epsg}" if geobox.crs.epsg else None,
        "proj:wkt2": None if geobox.crs.epsg else geobox.crs.to_wkt(),
        "proj:shape": [int(v) for v in geobox.shape.yx],
        "proj:transform": [a.a, a.b, a.c, a.d, a.e, a.f],
        "aef:kind": attrs.get("kind"),
        "aef:dtype": attrs.get("dtype"),
        "aef:period": attrs.get("period"),
        "aef:model_hash": _model_hash(attrs.get("model")),
        "aef:tile": tile.id if tile else None,
    }
    if not props["start_datetime"]:
        raise DataError(f"{store} has no `period` attribute; the STAC index needs one (re-run `aef embed` with --period).")
    item = pystac.Item(store.stem, geometry, bbox, None, {k: v for k, v in props.items() if v is not None}, stac_extensions=[PROJ_SCHEMA])
    item.add_asset("embedding", pystac.Asset(f"../{store.name}", media_type=pystac.MediaType.ZARR, roles=["data"], extra_fields={"zarr:variable": es.VAR}))
    if cog is not None:
        item.add_asset("cog", pystac.Asset(f"../cog/{cog.name}", media_type=pystac.MediaType.COG, roles=["data"]))
    return item


def _check_item(d: dict) -> None:
    """Core STAC schema (bundled with pystac, offline) + the projection fields by hand:
    extension schemas live on the web and this machine has no network."""
    import pystac.validation

    core = {**d, "stac_extensions": []}
    pystac.validation.validate_dict(core)
    p = d["properties"]
    if not ((isinstance(p.get("proj:code"), str) or isinstance(p.get("proj:wkt2"), str)) and len(p["proj:shape"]) == 2 and len(p["proj:transform"]) in (6, 9)):
        raise DataError(f"item {d['id']}: invalid projection fields")


def build_index(out_dir: str | Path, cog: bool = False) -> IndexResult:
    """Index the complete `*.zarr` embedding stores of `out_dir` (see module docstring)."""
    import pystac

    from aefcli.io.mosaic import write_cog, write_vrts

    out = Path(out_dir)
    if not out.is_dir():
        raise InputError(f"{out} is not a directory; give the folder holding the <TILE_ID>.zarr stores.")
    items, skipped = [], []
    geoboxes: dict[str, Any] = {}
    for store in sorted(p for p in out.glob("*.zarr") if p.is_dir()):
        try:
            attrs = es.store_attrs(store)
            if not attrs.get("complete"):
                skipped.append(f"{store.name}: incomplete")
                continue
            geobox = es.open_embeddings(store).odc.geobox
            mirror = write_cog(store, out / "cog" / f"{store.stem}.tif") if cog else None
            item = _item(store, attrs, geobox, mirror)
        except DataError as err:
            skipped.append(f"{store.name}: {err}")
            continue
        items.append(item)
        geoboxes[item.id] = geobox
    if not items:
        raise DataError(f"no complete embedding store (*.zarr) in {out}; run `aef embed --tile ID --out {out}` first." + (f" Skipped: {'; '.join(skipped)}" if skipped else ""))

    for item in items:
        d = item.to_dict(include_self_link=False, transform_hrefs=False)
        d["links"] = [{"rel": "collection", "href": f"../{COLLECTION}", "type": "application/json"}, {"rel": "parent", "href": f"../{COLLECTION}", "type": "application/json"}]
        d["collection"] = out.name or "aef-embeddings"
        _check_item(d)
        _atomic_write(out / "items" / f"{item.id}.json", json.dumps(d, indent=1))
    keep = {f"{i.id}.json" for i in items}
    for stale in (out / "items").glob("*.json"):
        if stale.name not in keep:
            stale.unlink()

    vrts = tuple(write_vrts(out, [i.id for i in items], geoboxes)) if cog else ()
    starts = [i.properties["start_datetime"] for i in items]
    ends = [i.properties.get("end_datetime") or i.properties["start_datetime"] for i in items]
    bboxes = [i.bbox for i in items]
    overall = [min(b[0] for b in bboxes), min(b[1] for b in bboxes), max(b[2] for b in bboxes), max(b[3] for b in bboxes)]
    if any(b[0] > b[2] for b in bboxes):  # an item across the antimeridian: keep the overall box honest
        overall[0], overall[2] = -180.0, 180.0
    from datetime import datetime

    coll = pystac.Collection(
        id=out.name or "aef-embeddings",
        description="aef embedding field tiles (64-d unit vectors per 10 m pixel), one Zarr store per UTM tile.",
        extent=pystac.Extent(pystac.SpatialExtent([overall, *bboxes] if len(bboxes) > 1 else [overall]), pystac.TemporalExtent([[datetime.fromisoformat(min(starts)), datetime.fromisoformat(max(ends))]])),
        license="other",
    )
    cd = coll.to_dict(include_self_link=False, transform_hrefs=False)
    cd["links"] = [{"rel": "item", "href": f"./items/{i.id}.json", "type": "application/geo+json"} for i in items]
    pystac.validation.validate_dict(cd)
    _atomic_write(out / COLLECTION, json.dumps(cd, indent=1))
    _note_edge_sums(out)
    return IndexResult(out / COLLECTION, tuple(i.id for i in items), tuple(skipped), vrts)


def _note_edge_sums(out: Path) -> None:
    """Say how much OUT/.aef-edges holds: edge sums `aef embed` saved for neighbour tiles not embedded yet."""
    from aefcli import console
    from aefcli.embed_edges import EDGES

    files = list((out / EDGES).rglob("*.npy"))
    if files:
        mb = sum(f.stat().st_size for f in files) / 1e6
        console.say(f"note: {out / EDGES} holds {len(files)} edge sums ({mb:.0f} MB) saved for neighbour tiles not "
                    "embedded yet; delete it once the region is done")


def open_index(path: str | Path) -> list[IndexEntry]:
    """The stores listed by an index (OUT_DIR or its collection.json), in item order."""
    path = Path(path)
    coll = path / COLLECTION if path.is_dir() else path
    if not coll.is_file():
        raise DataError(f"no STAC index at {coll}; run `aef index {path}` first.")
    entries = []
    for link in json.loads(coll.read_text()).get("links", []):
        if link.get("rel") != "item":
            continue
        item_path = (coll.parent / link["href"]).resolve()
        d = json.loads(item_path.read_text())
        assets = d["assets"]
        cog = (item_path.parent / assets["cog"]["href"]).resolve() if "cog" in assets else None
        entries.append(IndexEntry(
            id=d["id"],
            store=(item_path.parent / assets["embedding"]["href"]).resolve(),
            epsg=int(d["properties"].get("proj:code", "EPSG:0").split(":")[1]),
            bbox=tuple(d["bbox"]),
            period=d["properties"].get("aef:period"),
            cog=cog,
        ))
    return entries


def open_mosaic(path: str | Path, epsg: int | None = None):
    """All indexed stores of one UTM zone as one lazy (y, x, band) float32 DataArray (NaN between tiles).

    epsg: the zone to open; may be omitted when the index holds a single zone.
    """
    import xarray as xr

    entries = open_index(path)
    zones = sorted({e.epsg for e in entries})
    if epsg is None and len(zones) > 1:
        raise InputError(f"the index spans zones {zones}; choose one (epsg=...).")
    epsg = epsg or zones[0]
    arrays = [es.open_embeddings(e.store) for e in entries if e.epsg == epsg]
    if not arrays:
        raise DataError(f"the index has no store in EPSG:{epsg}; it has {zones}.")
    # merge (outer join), not combine_by_coords: a region may have missing tiles.
    joined = xr.merge([a.drop_attrs().to_dataset(name=es.VAR) for a in arrays], join="outer", compat="no_conflicts")
    # ... and the union of coordinates skips whole missing tile columns/rows: put it back on the full grid.
    import numpy as np

    res = abs(float(arrays[0].x[1] - arrays[0].x[0]))
    x, y = joined.x.values, joined.y.values
    full = {"x": np.arange(x.min(), x.max() + res / 2, res), "y": np.arange(y.max(), y.min() - res / 2, -res)}
    out = joined[es.VAR].reindex(full, method="nearest", tolerance=res / 4)
    return out.rio.write_crs(f"EPSG:{epsg}")

