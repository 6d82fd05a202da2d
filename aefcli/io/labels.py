"""GeoJSON labels for probes: points or polygons, any declared CRS, as cube pixels.

Points give one pixel each; polygons give the pixels whose centres they cover
(optionally capped per polygon). Coordinates are kept in metres of the cube's
CRS so that spatial CV blocks are drawn in metres.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aefcli.errors import InputError


@dataclass(frozen=True)
class LabelSet:
    """Labelled samples in one cube CRS. All arrays have length N (one per pixel sample).

    x, y: pixel-centre coordinates (metres, cube CRS); values: the raw property
    values (str, int or float, object array); group: index of the GeoJSON feature
    each sample comes from; n_features: features read; n_outside: features (points)
    or polygons with no pixel inside the grid.
    """

    x: np.ndarray
    y: np.ndarray
    values: np.ndarray
    group: np.ndarray
    n_features: int
    n_outside: int


@dataclass(frozen=True)
class GeoLabels:
    """The parsed file: shapely geometries in their declared CRS plus the property values."""

    geoms: list
    values: list
    crs: str
    path: str


def pixel_centres(affine, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) in CRS units of pixel centres (rows, cols) under a north-up `affine`."""
    c, r = np.asarray(cols, np.float64) + 0.5, np.asarray(rows, np.float64) + 0.5
    return affine.a * c + affine.b * r + affine.c, affine.d * c + affine.e * r + affine.f


def pixel_of(affine, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) int of the pixels containing points (x, y) in CRS units."""
    inv = ~affine
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    cols = inv.a * x + inv.b * y + inv.c
    rows = inv.d * x + inv.e * y + inv.f
    return np.floor(rows).astype(np.int64), np.floor(cols).astype(np.int64)


def _declared_crs(doc: dict) -> str:
    """RFC 7946 files are WGS84 lon/lat; older files may declare `crs.properties.name`."""
    crs = doc.get("crs")
    if not crs:
        return "EPSG:4326"
    name = (crs.get("properties") or {}).get("name") if isinstance(crs, dict) else None
    if not name:
        raise InputError("the GeoJSON `crs` member has no properties.name; remove it (WGS84) or give e.g. EPSG:32631.")
    if "CRS84" in name:
        return "EPSG:4326"
    if name.startswith("urn:ogc:def:crs:EPSG:"):
        return "EPSG:" + name.rsplit(":", 1)[-1]
    return name


def read_geojson(path: str | Path, field: str) -> GeoLabels:
    """Parse a GeoJSON FeatureCollection (or one Feature) and take `field` from each feature.

    Features whose property is null are skipped; a field missing from every
    feature, an empty collection or a malformed file raise InputError.
    """
    import shapely.geometry

    from aefcli.io.geojson import read_features

    path = Path(path)
    feats, doc = read_features(path, "label file")
    geoms, values, seen = [], [], set()
    for i, feat in enumerate(feats):
        props = (feat or {}).get("properties") or {}
        seen.update(props)
        if props.get(field) is None or not (feat or {}).get("geometry"):
            continue
        try:
            geom = shapely.geometry.shape(feat["geometry"])
        except Exception as err:  # shapely raises several types for bad coordinates
            raise InputError(f"{path}: feature {i} has an invalid geometry ({err}).") from None
        geoms.append(geom)
        values.append(props[field])
    if not geoms:
        have = ", ".join(sorted(seen)) or "none"
        raise InputError(f"no feature in {path} has the property {field!r}; pass --field (properties found: {have}).")
    return GeoLabels(geoms=geoms, values=values, crs=_declared_crs(doc), path=str(path))


def to_pixels(labels: GeoLabels, geobox, max_per_polygon: int | None = None, seed: int = 0) -> LabelSet:
    """Reproject the labels to `geobox`'s CRS and list the labelled pixel centres inside it."""
    import shapely
    from pyproj import Transformer
    from rasterio.features import rasterize

    tr = Transformer.from_crs(labels.crs, str(geobox.crs), always_xy=True)

    def project(coords: np.ndarray) -> np.ndarray:
        x, y = tr.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    ny, nx = geobox.shape.yx
    rng = np.random.default_rng(seed)
    xs, ys, vals, grp = [], [], [], []
    outside = 0
    for i, (geom, value) in enumerate(zip(labels.geoms, labels.values)):
        g = shapely.transform(geom, project)
        if g.geom_type in ("Point", "MultiPoint"):
            pts = shapely.get_coordinates(g)
            rows, cols = pixel_of(geobox.affine, pts[:, 0], pts[:, 1])
        else:
            mask = rasterize([(g, 1)], out_shape=(ny, nx), transform=geobox.affine, fill=0, dtype="uint8")
            rows, cols = np.nonzero(mask)
            if max_per_polygon and rows.size > max_per_polygon:
                keep = rng.choice(rows.size, max_per_polygon, replace=False)
                rows, cols = rows[keep], cols[keep]
        inside = (rows >= 0) & (rows < ny) & (cols >= 0) & (cols < nx)
        if not inside.any():
            outside += 1
            continue
        rows, cols = rows[inside], cols[inside]
        cx, cy = pixel_centres(geobox.affine, rows, cols)
        xs.append(np.asarray(cx, dtype=np.float64))
        ys.append(np.asarray(cy, dtype=np.float64))
        vals.extend([value] * rows.size)
        grp.append(np.full(rows.size, i))
    cat = lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)  # noqa: E731
    return LabelSet(
        x=cat(xs, np.float64), y=cat(ys, np.float64), values=np.array(vals, dtype=object),
        group=cat(grp, np.int64), n_features=len(labels.geoms), n_outside=outside,
    )
