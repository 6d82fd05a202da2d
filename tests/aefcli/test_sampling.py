"""Training samples: windows with valid pixels, held-out targets, student views, determinism."""

import numpy as np
import pytest
import torch
from train_cubes import make_cube

from aefcli.errors import DataError, InputError
from aefcli.io.cube import open_cube
from aefcli.sampling import SamplingConfig, WindowSampler, perturb
from aefcli.video import to_days


@pytest.fixture(scope="module")
def cube_path(tmp_path_factory):
    return make_cube(tmp_path_factory.mktemp("cubes") / "a.zarr")


def sampler(path, **kw):
    cube = open_cube(path)
    cfg = SamplingConfig(**{"window": 16, "batch_size": 4, "max_frames": 6, **kw})
    return WindowSampler([path], ("s2", "s1"), cube.norm, cfg, seed=kw.pop("seed", 0) if "seed" in kw else 0)


def test_batch_shapes_targets_disjoint_from_inputs(cube_path):
    batch = sampler(cube_path).batch(0)
    s2 = batch.teacher.sources["s2"]
    assert s2.values.shape[0] == 4 and s2.values.shape[2:] == (4, 16, 16)
    assert s2.values.shape[1] <= 6  # max_frames
    assert set(batch.targets) <= {"s2", "s1"} and batch.targets
    for name, tgt in batch.targets.items():
        tv = batch.teacher.sources[name]
        for i in range(4):
            held = set(tgt.times[i][tgt.present[i]].tolist())
            seen = set(tv.times[i][tv.present[i]].tolist())
            assert not held & seen, "a held-out frame is also an input"
            lo, hi = batch.teacher.period[i].tolist()
            assert all(lo <= t < hi + 1e-3 for t in held), "targets lie in the valid period"
    for i in range(4):  # every window has targets and inputs, and some valid pixels
        assert any(t.present[i].any() for t in batch.targets.values())
        assert any(v.frame_ok[i].any() for v in batch.teacher.sources.values())
    assert torch.isfinite(s2.values).all()


def test_student_sees_a_subset_of_the_teacher(cube_path):
    batch = sampler(cube_path, batch_size=8).batch(3)
    fewer = 0
    for i in range(8):
        t_times = {(n, t) for n, v in batch.teacher.sources.items() for t in v.times[i][v.present[i]].tolist()}
        s_times = {(n, t) for n, v in batch.student.sources.items() for t in v.times[i][v.present[i]].tolist()}
        assert s_times and s_times <= t_times
        fewer += len(s_times) < len(t_times)
    assert fewer >= 4  # the student is actually perturbed
    assert torch.equal(batch.student.period, batch.teacher.period)


def test_batches_depend_only_on_seed_rank_step(cube_path):
    a, b = sampler(cube_path).batch(5), sampler(cube_path).batch(5)
    assert torch.equal(a.teacher.sources["s2"].values, b.teacher.sources["s2"].values)
    c = sampler(cube_path).batch(6)
    assert not torch.equal(a.teacher.period, c.teacher.period)
    other_rank = WindowSampler([cube_path], ("s2", "s1"), open_cube(cube_path).norm,
                               SamplingConfig(window=16, batch_size=4, max_frames=6), seed=0, rank=1).batch(5)
    assert not torch.equal(a.teacher.period, other_rank.teacher.period)


def test_perturb_keeps_a_frame_and_drops_only():
    from aefcli.io.cube import SourceWindow

    times = np.datetime64("2018-01-01", "ns") + np.arange(5) * np.timedelta64(30, "D")
    win = SourceWindow(np.zeros((5, 2, 4, 4), np.float32), np.ones((5, 4, 4), bool), times)
    cfg = SamplingConfig(window=16, drop_frame_p=0.99)
    for seed in range(30):
        out = perturb({"s2": win, "s1": win}, cfg, np.random.default_rng(seed))
        assert sum(len(w.times) for w in out.values()) >= 1
        assert all(set(to_days(w.times)) <= set(to_days(times)) for w in out.values())


def test_bad_inputs_are_one_line_errors(cube_path, tmp_path):
    with pytest.raises(InputError, match="larger than cube"):
        sampler(cube_path, window=64).batch(0)
    with pytest.raises(InputError, match="landsat"):
        WindowSampler([cube_path], ("s2", "landsat"), {}, SamplingConfig(window=16)).batch(0)
    from aefcli.normalise import NormStats

    norm = NormStats("log", ("B02", "B03", "B04", "B08"), (-2.0,) * 4, (1.0,) * 4)
    cloudy = make_cube(tmp_path / "cloudy.zarr", size=24, cloud=1.01, sources=("s2",), s2_norm=norm)
    with pytest.raises(DataError, match="window"):
        WindowSampler([cloudy], ("s2",), open_cube(cloudy).norm, SamplingConfig(window=16, tries=3)).batch(0)


def _window(days, values, valid):
    from aefcli.io.cube import SourceWindow

    times = (np.round(np.asarray(days) * 86_400).astype(np.int64).astype("datetime64[s]")).astype("datetime64[ns]")
    return SourceWindow(np.asarray(values, np.float32), np.asarray(valid, bool), times, ("b",))


def test_profile_is_the_median_of_each_bins_valid_observations():
    from aefcli.sampling import profile

    # 5 frames of a 1-band 1 x 2 window; bins [0, 10) and [10, 20), and nothing in [20, 30)
    days = [1.0, 2.0, 3.0, 12.0, 14.0]
    values = np.array([1.0, 5.0, 100.0, 7.0, 9.0])[:, None, None, None] * np.ones((1, 1, 1, 2))
    valid = np.ones((5, 1, 2), bool)
    valid[2, 0, 1] = False  # the cloud (100) at pixel 1 must not enter its median
    valid[3:, 0, 0] = False  # pixel 0 has no clear view in the second bin
    out = profile(_window(days, values, valid), (0.0, 30.0), 3)
    assert len(out.times) == 2, "the empty third bin is left out"
    np.testing.assert_allclose(to_days(out.times), [5.0, 15.0])
    np.testing.assert_allclose(out.values[0, 0, 0], [5.0, 3.0])  # median(1, 5, 100); median(1, 5)
    assert out.valid[1].tolist() == [[False, True]]
    assert out.values[1, 0, 0, 1] == 8.0 and out.values[1, 0, 0, 0] == 0.0  # invalid stays 0


def test_profile_targets_are_added_beside_held_out_frames(cube_path):
    plain = sampler(cube_path, max_targets=1).batch(2)
    with_profile = sampler(cube_path, max_targets=1, profile_targets=4).batch(2)
    assert torch.equal(plain.teacher.sources["s2"].values, with_profile.teacher.sources["s2"].values)
    for name, tgt in with_profile.targets.items():
        extra = tgt.present.sum(1) - plain.targets[name].present.sum(1) if name in plain.targets else tgt.present.sum(1)
        assert (extra >= 1).all() and (extra <= 4).all()
        lo, hi = with_profile.teacher.period[:, :1], with_profile.teacher.period[:, 1:]
        times = tgt.times[tgt.present]
        assert ((times >= lo.expand_as(tgt.times)[tgt.present]) & (times < hi.expand_as(tgt.times)[tgt.present])).all()
    with pytest.raises(InputError):
        SamplingConfig(profile_targets=-1)
