"""Cube windows -> VideoBatch: padding, masks, times in days since 1970."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from aefcli.video import from_days, period_days, stack_frames, to_days, windows_to_video


@dataclass
class Win:  # the SourceWindow shape of docs/formats.md section 1
    values: np.ndarray
    valid: np.ndarray
    times: np.ndarray


def win(t, c=3, size=4, start="2018-01-01", fill=1.0):
    times = np.datetime64(start, "ns") + np.arange(t) * np.timedelta64(5, "D")
    values = np.full((t, c, size, size), fill, np.float32)
    return Win(values, np.ones((t, size, size), bool), times.astype("datetime64[ns]"))


def test_days_since_epoch_roundtrip():
    assert to_days(np.datetime64("1970-01-02")) == 1.0
    assert to_days("2018-01-01T12:00") == pytest.approx(17532.5)
    t = np.array(["2018-03-04T05:06:07", "2020-02-29"], "datetime64[ns]")
    np.testing.assert_array_equal(from_days(to_days(t)), t)
    assert period_days("2018-01-01/2019-01-01") == (17532.0, 17897.0)
    with pytest.raises(ValueError):
        period_days("2019-01-01/2018-01-01")


def test_ragged_frames_and_missing_sources_are_padded():
    windows = [{"s2": win(3, fill=2.0), "s1": win(1, c=2)}, {"s2": win(5)}]
    video = windows_to_video(windows, [[17532, 17897], [17532, 17700]])
    s2, s1 = video.sources["s2"], video.sources["s1"]
    assert s2.values.shape == (2, 5, 3, 4, 4) and s1.values.shape == (2, 1, 2, 4, 4)
    assert s2.present.tolist() == [[True] * 3 + [False] * 2, [True] * 5]
    assert not s2.valid[0, 3:].any() and s2.valid[0, :3].all()
    assert torch.all(s2.values[0, 3:] == 0) and torch.all(s2.values[0, :3] == 2.0)
    assert s1.present.tolist() == [[True], [False]] and not s1.valid[1].any()
    assert s2.times[0, 0].item() == pytest.approx(17532.0)
    assert s2.times[0, 2].item() == pytest.approx(17542.0)
    assert s2.times[0, 4].item() == s2.times[0, 2].item()  # padding keeps the last real time
    assert video.period.dtype == torch.float32 and video.period[1, 1].item() == 17700


def test_empty_source_window_gets_one_padding_frame():
    frames = stack_frames([win(0), None])
    assert frames.values.shape[1] == 1 and not frames.present.any()


def test_mismatched_bands_or_sizes_are_refused():
    with pytest.raises(ValueError, match="band counts"):
        windows_to_video([{"s2": win(2, c=3)}, {"s2": win(2, c=4)}], [[0, 1], [0, 1]])
    with pytest.raises(ValueError, match="share one size"):
        windows_to_video([{"s2": win(2, size=4)}, {"s2": win(2, size=8)}], [[0, 1], [0, 1]])


def test_text_rows_pass_through():
    video = windows_to_video([{"s2": win(1)}] * 2, [[0, 1]] * 2, text=np.ones((2, 8)), text_mask=[True, False])
    assert video.text.shape == (2, 8) and video.text_mask.tolist() == [True, False]


def test_reused_buffers_are_refilled_with_what_fresh_arrays_hold():
    reuse: dict = {}
    first = windows_to_video([{"s2": win(5, fill=7.0)}, {"s2": win(5, fill=8.0)}], [[0, 1], [0, 1]], reuse=reuse)
    buffer = first.sources["s2"].values.numpy()
    windows = [{"s2": win(3, fill=2.0)}, {"s2": win(5)}]
    again = windows_to_video(windows, [[0, 1], [0, 1]], reuse=reuse)
    fresh = windows_to_video(windows, [[0, 1], [0, 1]])
    assert np.shares_memory(again.sources["s2"].values.numpy(), buffer)  # refilled, not allocated
    for name in ("values", "valid", "times", "present"):  # the first batch's frames 3-4 of window 0 are gone
        assert torch.equal(getattr(again.sources["s2"], name), getattr(fresh.sources["s2"], name))
