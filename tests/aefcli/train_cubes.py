"""Tiny real Zarr cubes for the training tests (written through `aefcli.io.cube_writer.write_cube`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def make_cube(path: Path, size: int = 40, s2_frames: int = 24, s1_frames: int = 12, seed: int = 0,
              sources: tuple[str, ...] = ("s2", "s1"), cloud: float = 0.2, s2_norm=None) -> Path:
    """A cube of `size` x `size` px over 2018: s2 (4 bands, seasonal fields + clouds), s1 (VV, VH dB)."""
    from affine import Affine
    from odc.geo.geobox import GeoBox

    from aefcli.io.cube_writer import SourceArrays, write_cube

    rng = np.random.default_rng(seed)
    geobox = GeoBox((size, size), Affine(10, 0, 500_000, 0, -10, 5_630_000), "EPSG:32631")
    fields = (np.add.outer(np.arange(size) // 10, np.arange(size) // 10) % 3).astype(np.float32)  # 3 "crops"
    arrays = {}
    if "s2" in sources:
        t = np.datetime64("2018-01-03", "ns") + (np.arange(s2_frames) * (365 // max(s2_frames, 1))).astype("timedelta64[D]")
        doy = np.arange(s2_frames) * (365 / max(s2_frames, 1))
        green = 0.5 + 0.4 * np.sin(2 * np.pi * (doy[:, None, None] / 365 - 0.25 - 0.1 * fields[None]))
        raw = np.stack([0.05 + 0.02 * fields[None] + 0 * green, 0.08 - 0.03 * green, 0.06 - 0.04 * green + 0.02,
                        0.2 + 0.3 * green], axis=1).astype(np.float32)
        raw += rng.normal(0, 0.005, raw.shape).astype(np.float32)
        valid = rng.random((s2_frames, 1, 1)) > cloud  # whole-frame clouds ...
        valid = valid & (rng.random((s2_frames, size, size)) > 0.05)  # ... and speckle
        arrays["s2"] = SourceArrays(raw, valid, t, ("B02", "B03", "B04", "B08"), norm=s2_norm)
    if "s1" in sources:
        t = np.datetime64("2018-01-06", "ns") + (np.arange(s1_frames) * (365 // max(s1_frames, 1))).astype("timedelta64[D]")
        raw = np.stack([-12 + 2 * np.broadcast_to(fields, (s1_frames, size, size)),
                        -18 + 2 * np.broadcast_to(fields, (s1_frames, size, size))], axis=1)
        raw = (raw + rng.normal(0, 1.0, raw.shape)).astype(np.float32)
        arrays["s1"] = SourceArrays(raw, np.ones((s1_frames, size, size), bool), t, ("VV", "VH"))
    return write_cube(path, arrays, geobox, chunk=32)
