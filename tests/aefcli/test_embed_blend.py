"""embed_task.add_weighted (one in-place weighting per window, shared by its blends) adds bitwise what Blender.add adds."""

from __future__ import annotations

import numpy as np

from aefcli.embed_task import add_weighted
from aefcli.tiling import Blender, Layout


def test_add_weighted_equals_blender_add_bitwise_across_block_edges():
    lay = Layout(32, 16, 32)
    rng = np.random.default_rng(0)
    blocks = [((0, 32), (0, 32)), ((0, 32), (32, 64)), ((32, 64), (0, 32)), ((32, 64), (32, 64))]
    ref = [Blender(lay, r, c, 8) for r, c in blocks]
    new = [Blender(lay, r, c, 8) for r, c in blocks]
    weight = lay.weights()
    for row0, col0 in [(-8, -8), (8, 8), (24, 8), (8, 24), (24, 24), (40, 40)]:  # windows straddling 1-4 blocks
        values = rng.normal(size=(32, 32, 8)).astype(np.float32)
        has = rng.random((32, 32)) > 0.1
        for b in ref:
            b.add(row0, col0, values, has)
        mine = values.copy()
        add_weighted(new, weight, row0, col0, mine, has)
        np.testing.assert_array_equal(mine, values * weight[..., None])  # the buffer now holds the weighted output
    for a, b in zip(ref, new):
        assert a.acc.tobytes() == b.acc.tobytes() and a.wsum.tobytes() == b.wsum.tobytes()
        np.testing.assert_array_equal(a.has_data, b.has_data)
        assert a.result().tobytes() == b.result().tobytes()
