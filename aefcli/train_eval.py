"""`aef train --eval-labels`: a quick linear probe on the current embeddings during training.

Reconstruction loss does not predict embedding quality, so the run can watch a
labelled validation set instead: the windows of one cube that hold labelled
pixels are embedded (all their frames in the cube's period, model in eval mode),
a logistic regression is fitted on half of the pixels and scored on the other
half, the halves made of 16 x 16 px blocks so that neighbours do not leak, then
the halves swap. The probe is `aef probe`'s own (standardise, then a balanced
logistic regression), so the hook ranks checkpoints as the benchmark does. The figure is the mean balanced accuracy of the two directions.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from aefcli.errors import InputError

log = logging.getLogger(__name__)
BLOCK_PX = 16


class ProbeHook:
    """Callable: hook(model, device) -> balanced accuracy of a blocked 2-fold logistic probe.

    labels: GeoJSON (points or polygons) with a class property `field`, read by
    `aefcli.io.labels`; cube: an opened Cube; bands/norm: the model's band table
    and statistics; window: L of the windows embedded.
    """

    def __init__(self, labels: Path, field: str, cube, bands: dict[str, tuple[str, ...]], norm: dict[str, Any],
                 window: int, max_frames: int = 64, seed: int = 0) -> None:
        from aefcli.io.labels import read_geojson, to_pixels

        pts = to_pixels(read_geojson(labels, field), cube.geobox, max_per_polygon=200, seed=seed)
        inv = ~cube.geobox.affine
        cols, rows = inv @ (np.asarray(pts.x, float), np.asarray(pts.y, float))
        self.rows, self.cols = np.floor(rows).astype(int), np.floor(cols).astype(int)
        classes, self.y = np.unique(np.asarray(pts.values).astype(str), return_inverse=True)
        if len(classes) < 2:
            raise InputError(f"--eval-labels {labels}: need at least two classes inside the cube, found {len(classes)}")
        blocks = (self.rows // BLOCK_PX) * 100_003 + self.cols // BLOCK_PX
        uniq, which = np.unique(blocks, return_inverse=True)
        self.fold = np.random.default_rng(seed).permutation(len(uniq))[which] % 2  # blocks shuffled into 2 halves
        self.cube, self.bands, self.norm, self.window, self.max_frames = cube, bands, norm, window, max_frames
        self.tiles = sorted({(r // window, c // window) for r, c in zip(self.rows, self.cols)})
        log.info("probe hook: %d labelled pixels, %d classes, %d windows", len(self.y), len(classes), len(self.tiles))

    def embeddings(self, model, device) -> np.ndarray:
        """(N, E) embeddings at the labelled pixels (E = the model's embed_dim, 64)."""
        import torch

        from aefcli.sampling import take
        from aefcli.video import to_days, windows_to_video

        cube, size = self.cube, self.window
        times = np.concatenate([cube.times[s] for s in self.bands if s in cube.sources])
        t0, t1 = times.min(), times.max() + np.timedelta64(1, "D")
        period = [[float(to_days(t0)), float(to_days(t1))]]
        out = np.zeros((len(self.y), model.cfg.embed_dim), np.float32)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            for tr, tc in self.tiles:
                rows, cols = slice(tr * size, tr * size + size), slice(tc * size, tc * size + size)
                win = {}
                for s in self.bands:
                    if s not in cube.sources:
                        continue
                    w = cube.read_window(s, rows, cols, (t0, t1), self.norm[s])
                    keep = np.flatnonzero(w.valid.any(axis=(1, 2)))
                    if len(keep) > self.max_frames:
                        keep = keep[np.linspace(0, len(keep) - 1, self.max_frames).round().astype(int)]
                    if len(keep):
                        win[s] = take(w, keep)
                if not win:
                    continue
                mu = model(windows_to_video([win], period).to(device))[0].float().cpu().numpy()
                sel = (self.rows // size == tr) & (self.cols // size == tc)
                out[sel] = mu[self.rows[sel] - tr * size, self.cols[sel] - tc * size]
        model.train(was_training)
        return out

    def __call__(self, model, device) -> float:
        from sklearn.metrics import balanced_accuracy_score

        from aefcli.probe_eval import fit, make_model

        x = self.embeddings(model, device)
        scores = []
        for k in (0, 1):
            train, test = self.fold != k, self.fold == k
            if len(np.unique(self.y[train])) < 2 or not test.any():
                continue
            clf = fit(make_model("logistic", balanced=True), x[train], self.y[train])
            scores.append(balanced_accuracy_score(self.y[test], clf.predict(x[test])))
        return float(np.mean(scores)) if scores else float("nan")
