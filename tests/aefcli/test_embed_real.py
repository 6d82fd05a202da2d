"""`aef embed` on REAL Sentinel-2 scenes: the two rico-hdl/Major-TOM-Core 1068 x 1068 px cells.

Each whole scene becomes a one-date cube (10 bands at 10 m, 20 m bands repeated 2x2,
Major-TOM's cloud mask as validity); the embedding runs in several tiles per
scene and is checked for completeness, unit length, nodata where the scene is
cloudy, and no seam at the tile borders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aefcli.embed import EmbedConfig, run
from aefcli.io.embedding_store import open_embeddings
from embed_world import make_checkpoint

BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
CROP = None  # the whole 1068 x 1068 px scene: 9 x 9 tiles of 128 px


def scenes(shared: Path) -> list[Path]:
    return sorted(p for p in (shared / "rico-hdl" / "Major-TOM-Core" / "S2L2A").glob("*/*/*") if (p / "B04.tif").exists())


def scene_cube(scene: Path, out: Path, crop: int | None = CROP) -> Path:
    """A one-date cube from a Major-TOM scene folder (reflectance = DN * 1e-4 - 0.1, baseline >= 04.00)."""
    import rasterio
    from odc.geo.geobox import GeoBox

    from aefcli.io.cube_writer import SourceArrays, write_cube

    with rasterio.open(scene / "B04.tif") as ref:
        n = ref.height if crop is None else crop
        gbox = GeoBox((n, n), ref.transform, ref.crs.to_string())
    raw = np.empty((1, len(BANDS), n, n), np.float32)
    for k, band in enumerate(BANDS):
        with rasterio.open(scene / f"{band}.tif") as src:
            dn = src.read(1).astype(np.float32)
        f = 1068 // dn.shape[0]
        dn = np.repeat(np.repeat(dn, f, 0), f, 1)[:n, :n]  # 20 m bands onto the 10 m grid
        raw[0, k] = np.where(dn > 0, dn * 1e-4 - 0.1, np.nan)
    with rasterio.open(scene / "cloud_mask.tif") as src:
        clear = src.read(1)[:n, :n] == 0
    valid = (clear & np.isfinite(raw[0]).all(0))[None]
    day = scene.name.split("_")[2][:8]
    times = np.array([f"{day[:4]}-{day[4:6]}-{day[6:]}"], dtype="datetime64[ns]")
    return write_cube(out, {"s2": SourceArrays(raw, valid, times, BANDS, item_ids=(scene.name,))}, gbox)


@pytest.mark.parametrize("index", [0, 1])
def test_major_tom_scene_embeds_in_tiles_without_seams(shared_data, tmp_path, index):
    found = scenes(shared_data)
    if len(found) <= index:
        pytest.skip("Major-TOM scenes are absent")
    scene = found[index]
    cube = scene_cube(scene, tmp_path / "cube.zarr")
    ckpt = make_checkpoint(tmp_path / "run", cube, bands=BANDS)
    year = int(scene.name.split("_")[2][:4])
    from aefcli.io.cube import open_cube

    c = open_cube(cube)
    w, s, e, n = c.geobox.extent.to_crs("EPSG:4326").boundingbox
    cfg = EmbedConfig(checkpoint=ckpt, cube=cube, out=tmp_path / "emb.zarr", period=f"{year}-01-01/{year + 1}-01-01",
                      bbox=f"{w},{s},{e},{n}", window=64, overlap=16, chunk=128, batch_size=8, dtype="int8")
    result = run(cfg)
    n = c.geobox.shape.y
    assert result["complete"] and result["tiles_total"] == (-(-n // 128)) ** 2 >= 25
    emb = open_embeddings(result["store"]).values
    assert emb.shape == (n, n, 64)
    ok = np.isfinite(emb).all(-1)
    clear = c.read_window("s2", slice(0, n), slice(0, n)).valid[0]
    np.testing.assert_array_equal(ok, clear)  # nodata exactly where the scene has no clear observation
    np.testing.assert_allclose(np.linalg.norm(emb[ok], axis=-1), 1.0, atol=0.01)
    # no seam at the 128 px tile borders (rows and cols), real scene content
    cos_x = (emb[:, :-1] * emb[:, 1:]).sum(-1)
    border = np.zeros(n - 1, bool)
    border[127::128] = True
    gap = np.nanmean(cos_x[:, ~border]) - np.nanmean(cos_x[:, border])
    assert abs(gap) < 0.01, gap
