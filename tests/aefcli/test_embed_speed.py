"""benchmarks/embed_speed.py plumbing at a tiny size: its pairs, decode counts and scaling line stay computable.

The figures themselves are measured by the benchmark, not asserted here (2 shared cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from scripts import ROOT


def test_embed_speed_reports_pairs_decodes_and_scaling(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "embed_speed.py"), "--work", str(tmp_path), "--size", "96", "--chunk", "48",
           "--window", "32", "--preset", "tiny", "--reps", "2", "--scale", "2", "--cases", "efficiency,scaling"]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    one, big, scaling = lines
    assert one["windows_run"] == one["windows_unique"]  # every window computed once
    assert one["frame_chunks_decoded"] == one["frame_chunks_in_cube"]  # every store chunk decoded once
    assert len(one["pairs"]) == 2 and all(p["efficiency"] > 0 and p["cpu_efficiency"] > 0 for p in one["pairs"])
    assert one["first_pair_efficiency"] == one["pairs"][0]["efficiency"]
    assert all(p["decoded"] == one["frame_chunks_in_cube"] for p in one["pairs"])  # each run starts from a cold cache
    assert big["size"] == 192 and big["windows_run"] == big["windows_unique"]
    assert scaling["rss_ratio"] > 0 and scaling["time_ratio"] > 0


def test_embed_speed_ab_alternates_the_switch_after_the_first_pair(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "embed_speed.py"), "--work", str(tmp_path), "--size", "96", "--chunk", "48",
           "--window", "32", "--preset", "tiny", "--reps", "3", "--cases", "efficiency", "--ab", "direct_writes"]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    (one,) = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert [p.get("side") for p in one["pairs"]] == [None, "on", "off"]
    assert one["on_median_efficiency"] == one["pairs"][1]["efficiency"]
    assert one["off_median_efficiency"] == one["pairs"][2]["efficiency"]
