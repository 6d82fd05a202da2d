"""Vector outputs in WGS84: sparse labelled points and geotagged text descriptions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from aefcli.sampleworld.classes import CLASSES
from aefcli.sampleworld.config import PIXEL_M, WorldConfig
from aefcli.sampleworld.landcover import BUILT, FOREST, GRASS, ROAD, WATER, LandCover
from aefcli.sampleworld.noise import stream

MIN_TEXT_PX = 40  # parcels under 0.4 ha get no description
NEIGHBOUR_PX = 3
_NAMES = {c.id: c.name for c in CLASSES}
_CROP_IDS = {c.id for c in CLASSES if c.crop}


def _to_wgs84(cfg: WorldConfig, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres (row, col) of the 10 m grid -> (lon, lat) degrees."""
    from pyproj import Transformer

    a, _, c, _, e, f = cfg.transform
    x, y = c + (cols + 0.5) * a, f + (rows + 0.5) * e
    lon, lat = Transformer.from_crs(cfg.epsg, 4326, always_xy=True).transform(x, y)
    return np.round(lon, 7), np.round(lat, 7)


def _feature(lon: float, lat: float, props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [float(lon), float(lat)]},
            "properties": props}


def write_geojson(path: Path, features: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}, indent=1) + "\n")
    return path


def label_points(lc: LandCover, cfg: WorldConfig) -> list[dict[str, Any]]:
    """Up to `cfg.labels_per_class` points per class at pixel centres one pixel inside
    their class (thin roads excepted), as GeoJSON Point features with `class` (name),
    `class_id` and `parcel`."""
    from scipy.ndimage import binary_erosion

    out = []
    for c in CLASSES:
        mask = lc.classes == c.id
        inner = mask if c.id == ROAD else binary_erosion(mask, iterations=1)
        rows, cols = np.nonzero(inner if inner.any() else mask)
        if rows.size == 0:
            continue
        pick = np.sort(stream(cfg.seed, "labels", c.id).choice(rows.size, min(cfg.labels_per_class, rows.size),
                                                               replace=False))
        lon, lat = _to_wgs84(cfg, rows[pick], cols[pick])
        for i, (x, y) in enumerate(zip(lon, lat)):
            parcel = int(lc.parcels[rows[pick[i]], cols[pick[i]]])
            out.append(_feature(x, y, {"class": c.name, "class_id": c.id, "parcel": parcel}))
    return out


def _neighbour_classes(lc: LandCover) -> dict[int, set[int]]:
    """Parcel -> classes found within NEIGHBOUR_PX pixels outside it."""
    pairs = set()
    p, k = lc.parcels, lc.classes
    for d in range(1, NEIGHBOUR_PX + 1):
        for dr, dc in ((d, 0), (-d, 0), (0, d), (0, -d)):
            a = p[max(dr, 0): p.shape[0] + min(dr, 0), max(dc, 0): p.shape[1] + min(dc, 0)]
            b = k[max(-dr, 0): k.shape[0] + min(-dr, 0), max(-dc, 0): k.shape[1] + min(-dc, 0)]
            keys = np.unique(a.astype(np.int64) * 256 + b)
            pairs.update(keys.tolist())
    out: dict[int, set[int]] = {}
    for key in pairs:
        out.setdefault(key // 256, set()).add(key % 256)
    return out


def _noun(class_id: int, area_px: int, rng: np.random.Generator) -> str:
    size = "small " if area_px * PIXEL_M**2 < 20_000 else "large " if area_px * PIXEL_M**2 > 80_000 else ""
    name = _NAMES[class_id]
    if class_id == GRASS:
        return size + str(rng.choice(["meadow", "pasture", "grassland parcel"]))
    if class_id == FOREST:
        return str(rng.choice(["patch of woodland", "forest stand", "deciduous wood"]))
    if class_id == BUILT:
        return "village"
    return f"{size}{name} field"


def _context(own: int, neighbours: set[int], rng: np.random.Generator) -> list[str]:
    phrases = []
    if WATER in neighbours:
        phrases.append(str(rng.choice(["beside a river", "on the river bank", "along the river"])))
    if ROAD in neighbours and own != BUILT:
        phrases.append(str(rng.choice(["by a road", "next to a country road"])))
    if BUILT in neighbours and own != BUILT:
        phrases.append("at the edge of the village")
    if FOREST in neighbours and own != FOREST:
        phrases.append(str(rng.choice(["next to a forest", "bordering woodland"])))
    crops = sorted(n for n in neighbours if n != own and n in _CROP_IDS)
    if crops:
        phrases.append(f"next to a {_NAMES[int(rng.choice(crops))]} field")
    return phrases[:2] or ["in open farmland"]


def text_points(lc: LandCover, cfg: WorldConfig) -> list[dict[str, Any]]:
    """One description per parcel of >= MIN_TEXT_PX pixels (fields, meadows, woods, the
    village; not water or roads), placed at the parcel's most interior pixel.
    Properties: `text`, `class`, `parcel`."""
    from scipy.ndimage import distance_transform_edt, maximum_position

    p = lc.parcels
    edge = np.zeros(p.shape, bool)
    edge[:-1] |= p[:-1] != p[1:]
    edge[1:] |= p[1:] != p[:-1]
    edge[:, :-1] |= p[:, :-1] != p[:, 1:]
    edge[:, 1:] |= p[:, 1:] != p[:, :-1]
    inside = distance_transform_edt(~edge)
    areas = np.bincount(p.ravel(), minlength=lc.parcel_class.size)
    ids = [i for i in range(lc.parcel_class.size)
           if areas[i] >= MIN_TEXT_PX and lc.parcel_class[i] not in (WATER, ROAD)]
    if not ids:
        return []
    anchors = maximum_position(inside, labels=p, index=ids)
    neighbours = _neighbour_classes(lc)
    rows = np.array([a[0] for a in anchors])
    cols = np.array([a[1] for a in anchors])
    lon, lat = _to_wgs84(cfg, rows, cols)
    out = []
    for i, pid in enumerate(ids):
        rng = stream(cfg.seed, "text", pid)
        own = int(lc.parcel_class[pid])
        noun = _noun(own, int(areas[pid]), rng)
        text = f"{noun} {' and '.join(_context(own, neighbours.get(pid, set()), rng))}"
        out.append(_feature(lon[i], lat[i], {"text": text, "class": _NAMES[own], "parcel": int(pid)}))
    return out
