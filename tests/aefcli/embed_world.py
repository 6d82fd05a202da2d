"""A small structured cube and a tiny fixed-seed checkpoint for the embed tests.

The cube is a 10 m UTM grid of rectangular "parcels", each with its own
spectrum and seasonal curve, plus noise and cloudy pixels: enough structure
that a model's output varies in space and a seam would show.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

S2_BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
X0, Y0 = 500_000.0, 5_630_000.0  # top-left corner, EPSG:32631


def make_cube(path: Path, size: int = 96, frames: int = 5, seed: int = 0, bands=S2_BANDS, origin=(X0, Y0),
              chunk: int | None = None) -> Path:
    """Write a complete cube of size x size pixels (top-left `origin`, EPSG:32631), `frames` S2 dates in 2024
    (store chunks of `chunk` px; default: the cube writer's)."""
    from affine import Affine
    from odc.geo.geobox import GeoBox

    from aefcli.io.cube_writer import SourceArrays, write_cube

    rng = np.random.default_rng(seed)
    gbox = GeoBox((size, size), Affine(10, 0, origin[0], 0, -10, origin[1]), "EPSG:32631")
    parcels = np.zeros((size, size), int)
    for k in range(1, 14):  # overlapping rectangles -> a parcel map
        r, c = rng.integers(0, size, 2)
        h, w = rng.integers(size // 8, size // 2, 2)
        parcels[r : r + h, c : c + w] = k
    spectra = rng.uniform(0.02, 0.4, (14, len(bands)))
    phase = rng.uniform(0, 2 * np.pi, 14)
    times = np.array([f"2024-{m:02d}-15" for m in np.linspace(2, 11, frames).astype(int)], dtype="datetime64[ns]")
    raw = np.empty((frames, len(bands), size, size), np.float32)
    for t in range(frames):
        season = 1 + 0.5 * np.sin(2 * np.pi * t / frames + phase)  # (14,)
        raw[t] = np.moveaxis((spectra * season[:, None])[parcels], -1, 0)
    raw += rng.normal(0, 0.01, raw.shape).astype(np.float32)
    valid = rng.random((frames, size, size)) > 0.1
    valid[1, : size // 3, : size // 3] = False  # a cloud
    arrays = SourceArrays(raw=raw, valid=valid, times=times, bands=tuple(bands),
                          item_ids=tuple(f"S2_{str(t)[:10]}" for t in times))
    more = {} if chunk is None else {"chunk": chunk}
    return write_cube(path, {"s2": arrays}, gbox, attrs={"period": "2024-01-01/2025-01-01"}, **more)


def make_checkpoint(path: Path, cube_path: Path | None, seed: int = 0, bands=S2_BANDS, train_args: dict | None = None) -> Path:
    """A tiny untrained model (fixed seed) with the cube's normalisation statistics.

    train_args: extra training arguments recorded in the checkpoint (e.g. support_days).
    """
    import torch

    from aefcli.checkpoint import save_checkpoint
    from aefcli.io.cube import open_cube
    from model import EmbeddingFieldModel, SourceSpec, preset

    torch.manual_seed(seed)
    cfg = preset("tiny", (SourceSpec("s2", len(bands)),))
    model = EmbeddingFieldModel(cfg)
    with torch.no_grad():  # an untrained head is dominated by one constant direction: let content speak
        model.summary.period_embed.weight.zero_()
        model.summary.period_embed.bias.zero_()
        model.summary.proj[-1].bias.zero_()
    norm = open_cube(cube_path).norm["s2"] if cube_path is not None else None
    if norm is None or tuple(bands) != norm.bands:  # a foreign band table: statistics of its own
        from aefcli.normalise import NormStats

        norm = NormStats("log", tuple(bands), (0.0,) * len(bands), (1.0,) * len(bands))
    return save_checkpoint(path, model, cfg, {"s2": norm}, {"s2": tuple(bands)}, {"preset": "tiny", **(train_args or {})}, step=1)


def bbox_of(size: int, margin_px: int = 0) -> str:
    """A WGS84 bbox well inside the cube's footprint (margin_px pixels in from each edge)."""
    from pyproj import Transformer

    tr = Transformer.from_crs(32631, 4326, always_xy=True)
    m = margin_px * 10
    lon0, lat0 = tr.transform(X0 + m, Y0 - size * 10 + m)
    lon1, lat1 = tr.transform(X0 + size * 10 - m, Y0 - m)
    return f"{lon0},{lat0},{lon1},{lat1}"
