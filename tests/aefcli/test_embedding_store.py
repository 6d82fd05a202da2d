"""The embedding cube store (docs/formats.md section 4) on real Zarr v3 files."""

import json

import numpy as np
import pytest
from odc.geo.geobox import GeoBox

from aefcli.errors import DataError, InputError
from aefcli.io import embedding_store as es

GB = GeoBox.from_bbox((500000, 5600000, 500400, 5600300), "EPSG:32631", resolution=10)  # 30 x 40 px


def _unit(shape, seed=0):
    v = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_quantise_matches_aef_law_and_round_trips():
    v = np.array([-1.0, -0.25, 0.0, 0.01, 0.25, 1.0, np.nan], dtype=np.float32)
    q = es.quantise(v)
    assert q.dtype == np.int8
    assert q.tolist() == [-127, -64, 0, 13, 64, 127, -128]  # 127.5*sqrt(0.25)=63.75 -> 64
    back = es.dequantise(q)
    assert np.isnan(back[-1]) and back.dtype == np.float32
    u = _unit((1000, 64))
    err = np.abs(es.dequantise(es.quantise(u)) - u)
    assert err.max() < 0.01  # the sqrt law keeps small values precise
    assert es.dequantise(np.int8(-127)) == pytest.approx(-(127 / 127.5) ** 2)


def _write_all(path, values, chunk):
    ny, nx = values.shape[:2]
    for r in range(0, ny, chunk):
        for c in range(0, nx, chunk):
            es.write_block(path, values[r : r + chunk, c : c + chunk], r, c)


@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_write_resume_open_round_trip(tmp_path, dtype):
    path = tmp_path / "emb.zarr"
    es.create_store(path, GB, list(range(64)), dtype, 16, {"period": "2024-01-01/2025-01-01", "model": "m1"})
    values = _unit((30, 40, 64), seed=1)
    values[0, 0] = np.nan
    with pytest.raises(DataError, match="incomplete"):
        es.open_embeddings(path)
    assert es.chunk_done(path) == set()
    es.write_block(path, values[:16, :16], 0, 0)
    stray = path / "embedding" / "c" / "0" / "1" / "0.partial"  # a killed writer's leftover
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"junk")
    assert es.chunk_done(path, clean=[(1, 1)]) == {(0, 0)}
    assert stray.exists(), "another share's in-flight chunk must survive"
    assert es.chunk_done(path, clean=[(0, 1)]) == {(0, 0)}
    assert not list(path.rglob("*.partial"))
    # same settings: kept for resume; the written chunk survives
    es.create_store(path, GB, list(range(64)), dtype, 16, {"period": "2024-01-01/2025-01-01", "model": "m1"})
    assert es.chunk_done(path) == {(0, 0)}
    _write_all(path, values, 16)
    assert es.chunk_done(path) == {(i, j) for i in range(2) for j in range(3)}
    es.mark_complete(path, {"seconds": 1.5})
    arr = es.open_embeddings(path)
    assert arr.dims == ("y", "x", "band") and arr.dtype == np.float32 and arr.shape == (30, 40, 64)
    assert arr.attrs["aef:embedding"]["complete"] is True and arr.attrs["aef:embedding"]["seconds"] == 1.5
    assert arr.attrs["aef:embedding"]["model"] == "m1"
    got = arr.values
    assert np.isnan(got[0, 0]).all()
    tol = 0.01 if dtype == "int8" else 0
    np.testing.assert_allclose(got[1:, 1:], values[1:, 1:], atol=tol)
    assert arr.rio.crs.to_epsg() == 32631
    assert tuple(arr.rio.transform()) == tuple(GB.affine)


def test_int8_store_is_64_bytes_per_pixel_and_unwritten_chunks_are_nodata(tmp_path):
    import zarr

    path = tmp_path / "emb.zarr"
    es.create_store(path, GB, list(range(64)), "int8", 16, {})
    z = zarr.open_array(path / "embedding", mode="r")
    assert z.dtype == np.int8 and z.dtype.itemsize * z.shape[2] == 64
    assert z.fill_value == -128
    es.write_block(path, _unit((16, 16, 64)), 0, 0)
    es.mark_complete(path)
    got = es.open_embeddings(path).values
    assert np.isfinite(got[:16, :16]).all()
    assert np.isnan(got[16:, :]).all() and np.isnan(got[:, 16:]).all()


def test_refuses_store_made_differently(tmp_path):
    path = tmp_path / "emb.zarr"
    es.create_store(path, GB, list(range(64)), "int8", 16, {"model": "a"})
    with pytest.raises(InputError, match="other settings"):
        es.create_store(path, GB, list(range(64)), "int8", 16, {"model": "b"})
    with pytest.raises(InputError, match="other settings"):
        es.create_store(path, GB, list(range(64)), "float32", 16, {"model": "a"})
    es.create_store(path, GB, list(range(64)), "float32", 16, {"model": "b"}, overwrite=True)
    assert es.store_attrs(path)["model"] == "b" and es.store_attrs(path)["dtype"] == "float32"
    with pytest.raises(InputError):
        es.create_store(tmp_path / "x.zarr", GB, [0], "int16", 16, {})


def test_write_block_must_be_chunk_aligned(tmp_path):
    path = tmp_path / "emb.zarr"
    es.create_store(path, GB, ["B04", "B08"], "float32", 16, {})
    with pytest.raises(ValueError, match="chunk grid"):
        es.write_block(path, np.zeros((16, 16, 2), np.float32), 8, 0)
    with pytest.raises(ValueError, match="chunk boundary"):
        es.write_block(path, np.zeros((10, 16, 2), np.float32), 0, 0)
    with pytest.raises(ValueError, match="bands"):
        es.write_block(path, np.zeros((16, 16, 3), np.float32), 0, 0)
    es.write_block(path, np.ones((14, 8, 2), np.float32), 16, 32)  # the ragged corner chunk
    es.mark_complete(path)
    arr = es.open_embeddings(path)
    assert list(arr.band.values) == ["B04", "B08"]
    assert arr.values[16:, 32:].min() == 1


def test_crs_and_transform_recovered_by_rioxarray_decode_coords_all(tmp_path):
    import xarray as xr

    path = tmp_path / "emb.zarr"
    es.create_store(path, GB, list(range(64)), "int8", 16, {})
    es.mark_complete(path)
    ds = xr.open_zarr(path, decode_coords="all", consolidated=False)
    assert ds.rio.crs.to_epsg() == 32631
    assert tuple(ds.embedding.rio.transform()) == tuple(GB.affine)
    assert json.loads((path / "zarr.json").read_text())["attributes"]["aef:embedding"]["format"] == 1


def test_crs_and_transform_recovered_by_gdal(tmp_path):
    import rasterio
    from rasterio.errors import RasterioIOError

    path = tmp_path / "emb.zarr"
    es.create_store(path, GB, list(range(64)), "int8", 16, {})
    es.write_block(path, _unit((16, 16, 64)), 0, 0)
    es.mark_complete(path)
    try:
        src = rasterio.open(f'ZARR:"{path}":/embedding')
    except RasterioIOError as err:
        # GDAL 3.10 (rasterio 1.4 wheels) does not know zarr-python 3's "bytes" codec name.
        if "Unsupported codec" in str(err):
            pytest.skip(f"this GDAL cannot read Zarr v3 from zarr-python 3: {err}")
        raise
    with src:
        assert src.crs.to_epsg() == 32631
        assert tuple(src.transform)[:6] == tuple(GB.affine)[:6]


@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_an_all_nodata_chunk_is_written_and_counts_as_done(tmp_path, dtype):
    path = tmp_path / "emb.zarr"
    es.create_store(path, GB, list(range(64)), dtype, 16, {"period": "2024-01-01/2025-01-01"})
    es.write_block(path, np.full((16, 16, 64), np.nan, dtype="float32"), 0, 0)  # e.g. open sea
    assert es.chunk_done(path) == {(0, 0)}


@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_direct_chunk_writes_equal_zarr_writes(tmp_path, dtype, monkeypatch):
    """write_block's own chunk files (aef's layout) are byte for byte what zarr writes, and read back the same."""
    values = _unit((30, 40, 64), seed=3)
    values[5, 7] = np.nan
    stores = {}
    for direct in (False, True):
        monkeypatch.setattr(es, "DIRECT_WRITES", direct)
        path = stores[direct] = tmp_path / f"direct-{direct}.zarr"
        es.create_store(path, GB, list(range(64)), dtype, 16, {})
        _write_all(path, values, 16)  # 2 x 3 chunks, the last row and column at the edge
        es.mark_complete(path)
    files = {d: sorted(f.relative_to(p) for f in (p / "embedding" / "c").rglob("*") if f.is_file()) for d, p in stores.items()}
    assert files[True] == files[False] and len(files[True]) == 6
    for rel in files[True]:
        assert (stores[True] / rel).read_bytes() == (stores[False] / rel).read_bytes(), rel
    got = {d: es.open_embeddings(p).values for d, p in stores.items()}
    np.testing.assert_array_equal(got[True], got[False])
    assert np.isnan(got[True][5, 7]).all()


def test_a_store_recreated_in_place_gets_a_new_writer(tmp_path):
    path = tmp_path / "emb.zarr"
    es.create_store(path, GB, list(range(64)), "float32", 16, {})
    es.write_block(path, _unit((16, 16, 64)), 0, 0)
    es.create_store(path, GB, list(range(64)), "int8", 16, {}, overwrite=True)  # same path, other dtype
    es.write_block(path, _unit((16, 16, 64)), 0, 0)
    es.mark_complete(path)
    import zarr

    assert zarr.open_array(path / "embedding", mode="r")[:16, :16].dtype == np.int8
    assert (path / "embedding" / "c" / "0" / "0" / "0").stat().st_size < 16 * 16 * 64  # zstd-compressed int8
