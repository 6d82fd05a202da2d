"""Window layout and blending: partition of unity, chunk independence, shares."""

import numpy as np
import pytest

from aefcli.errors import InputError
from aefcli.tiling import Blender, Layout, chunk_grid, parse_share, profile, share


@pytest.mark.parametrize("window,overlap,trim", [(128, 32, 8), (64, 16, 0), (32, 8, 2), (48, 24, 5)])
def test_profiles_form_a_partition_of_unity(window, overlap, trim):
    p = profile(window, overlap, trim)
    stride = window - overlap
    total = np.zeros(stride * 10 + window)
    for k in range(10):
        total[k * stride : k * stride + window] += p
    interior = total[window : stride * 10]
    np.testing.assert_allclose(interior, 1.0, atol=1e-12)
    assert p[:trim].sum() == 0 and p[window - trim :].sum() == 0
    assert np.all(np.diff(p[: window // 2]) >= 0)  # rises monotonically to the middle


def test_every_pixel_gets_weight_and_only_contributing_windows_are_listed():
    lay = Layout(window=32, overlap=8, chunk=20, origin=(7, 1003))
    w = lay.weights()
    for rows, cols in [((0, 20), (0, 20)), ((20, 40), (40, 53)), ((3, 4), (5, 6))]:
        cover = np.zeros((rows[1] - rows[0], cols[1] - cols[0]))
        for r0, c0 in lay.windows(rows, cols):
            full = np.zeros((200, 200))
            full[r0 + 50 : r0 + 82, c0 + 50 : c0 + 82] = w
            part = full[rows[0] + 50 : rows[1] + 50, cols[0] + 50 : cols[1] + 50]
            assert part.sum() > 0, "a listed window adds nothing to the block"
            cover += part
        np.testing.assert_allclose(cover, 1.0, atol=1e-6)


def test_lattice_is_anchored_to_absolute_pixels():
    a = Layout(window=32, overlap=8, chunk=64, origin=(0, 0))
    b = Layout(window=32, overlap=8, chunk=64, origin=(10, 30))
    wa = set(a.windows((10, 74), (30, 94)))
    wb = {(r + 10, c + 30) for r, c in b.windows((0, 64), (0, 64))}
    assert wa == wb


def _field(shape, seed=0):
    """A smooth random unit-vector field standing in for model output."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]] / 17.0
    f = np.stack([np.sin(yy * rng.uniform(0.5, 2) + xx * rng.uniform(0.5, 2) + rng.uniform(0, 6)) for _ in range(8)], -1)
    return (f / np.linalg.norm(f, axis=-1, keepdims=True)).astype(np.float32)


def _blend(lay, field, rows, cols, noise_seed=None):
    out = Blender(lay, rows, cols, field.shape[-1])
    pad = 64
    big = np.pad(field, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    for r0, c0 in lay.windows(rows, cols):
        win = big[r0 + pad : r0 + pad + lay.window, c0 + pad : c0 + pad + lay.window].copy()
        if noise_seed is not None:  # each window "predicts" with its own error
            win += np.random.default_rng(abs(hash((r0, c0, noise_seed))) % 2**32).normal(0, 0.05, win.shape).astype(np.float32)
            win /= np.linalg.norm(win, axis=-1, keepdims=True)
        out.add(r0, c0, win, np.ones(win.shape[:2], bool))
    return out.result()


def test_blending_reproduces_the_field_and_is_unit_length():
    lay = Layout(window=32, overlap=8, chunk=40)
    field = _field((40, 40))
    out = _blend(lay, field, (0, 40), (0, 40))
    np.testing.assert_allclose(out, field, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, atol=1e-5)


def test_chunked_blend_equals_whole_blend_bitwise():
    lay = Layout(window=32, overlap=8, chunk=24, origin=(5, 9))
    field = _field((70, 50))
    whole = _blend(lay, field, (0, 70), (0, 50), noise_seed=1)
    pieced = np.zeros_like(whole)
    for ch in chunk_grid((70, 50), 24):
        pieced[ch.rows[0] : ch.rows[1], ch.cols[0] : ch.cols[1]] = _blend(lay, field, ch.rows, ch.cols, noise_seed=1)
    # the same windows in the same order reach each pixel: identical up to float association
    np.testing.assert_allclose(pieced, whole, atol=1e-6)


def test_pixels_without_data_are_nan():
    lay = Layout(window=16, overlap=4, chunk=16)
    b = Blender(lay, (0, 16), (0, 16), 4)
    v = np.ones((16, 16, 4), np.float32) / 2
    has_data = np.ones((64, 64), bool)  # output pixel (r, c) at [r + 24, c + 24]
    has_data[24:27] = False
    for r0, c0 in lay.windows((0, 16), (0, 16)):
        b.add(r0, c0, v, has_data[r0 + 24 : r0 + 40, c0 + 24 : c0 + 40])
    out = b.result()
    assert np.isnan(out[:3]).all() and np.isfinite(out[3:]).all()


def test_shares_partition_the_chunks_deterministically():
    chunks = chunk_grid((1000, 700), 128)
    assert len(chunks) == 8 * 6 and chunks[-1].rows == (896, 1000) and chunks[-1].cols == (640, 700)
    parts = [share(chunks, i, 3) for i in range(3)]
    keys = [(c.i, c.j) for p in parts for c in p]
    assert sorted(keys) == sorted((c.i, c.j) for c in chunks) and len(set(keys)) == len(keys)
    assert share(chunks, 1, 3) == parts[1]


@pytest.mark.parametrize("text", ["2/2", "a/b", "1", "-1/3", "0/0"])
def test_bad_shares_are_input_errors(text):
    with pytest.raises(InputError):
        parse_share(text)


def test_bad_layouts_are_input_errors():
    with pytest.raises(InputError):
        Layout(window=32, overlap=20, chunk=64)
    with pytest.raises(InputError):
        Layout(window=32, overlap=8, chunk=0)
