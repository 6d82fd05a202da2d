"""Probe models and their honest evaluation: spatially blocked folds, the AEF n-shot protocol.

Pure numpy / scikit-learn: samples in, scores out. `aefcli.probe` does the I/O.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from aefcli.errors import InputError

MODELS = ("logistic", "ridge", "knn")
MAX = "max"


def blocked_folds(x: np.ndarray, y: np.ndarray, block_m: float, n_folds: int, seed: int) -> np.ndarray:
    """Fold id (N,) per sample: square blocks of `block_m` metres go whole to one fold.

    Neighbouring pixels (one parcel) then never sit on both sides of a split.
    block_m = 0 assigns samples at random (unblocked CV, which leaks spatially).
    Blocks are dealt to the fold with the fewest samples so far, in random order.
    """
    rng = np.random.default_rng(seed)
    if block_m <= 0:
        ids = np.arange(x.size)
    else:
        keys = np.stack([np.floor(x / block_m), np.floor(y / block_m)], axis=1)
        _, ids = np.unique(keys, axis=0, return_inverse=True)
        ids = ids.ravel()
    n_blocks = int(ids.max()) + 1 if ids.size else 0
    if n_blocks < n_folds:
        raise InputError(f"the labels fall in only {n_blocks} block(s) of {block_m:g} m, fewer than --cv {n_folds}; lower --block or --cv.")
    sizes = np.bincount(ids, minlength=n_blocks)
    order = rng.permutation(n_blocks)
    order = order[np.argsort(-sizes[order], kind="stable")]  # big blocks first, random among equals
    fold_of_block = np.empty(n_blocks, np.int64)
    load = np.zeros(n_folds)
    for b in order:
        f = int(np.argmin(load + rng.random(n_folds) * 1e-9))
        fold_of_block[b] = f
        load[f] += sizes[b]
    return fold_of_block[ids]


def make_model(kind: str, k: int = 3, balanced: bool = False, seed: int = 0):
    """An unfitted scikit-learn pipeline: standardise the features, then the probe."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logistic":
        head = LogisticRegression(max_iter=2000, class_weight="balanced" if balanced else None, random_state=seed)
    elif kind == "ridge":
        head = Ridge(alpha=1.0)
    elif kind == "knn":
        head = KNeighborsClassifier(n_neighbors=k)
    else:
        raise InputError(f"unknown probe model {kind!r}; choose one of {', '.join(MODELS)}.")
    return make_pipeline(StandardScaler(), head)


def fit(model, X: np.ndarray, y: np.ndarray):
    """Fit, shrinking kNN's k when there are fewer training samples than neighbours."""
    head = model.steps[-1][1]
    if hasattr(head, "n_neighbors"):
        head.set_params(n_neighbors=max(1, min(head.n_neighbors, len(y))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, y)


def draw_shots(y: np.ndarray, shots: int | str, rng: np.random.Generator) -> np.ndarray:
    """Indices into y: `shots` random samples of each class (all of them for "max")."""
    if shots == MAX:
        return np.arange(y.size)
    picks = [rng.choice(np.flatnonzero(y == c), min(int(shots), int((y == c).sum())), replace=False) for c in np.unique(y)]
    return np.sort(np.concatenate(picks))


@dataclass(frozen=True)
class EvalSpec:
    """How to evaluate: the probe, the folds, the shot counts and draws per shot count."""

    model: str = "logistic"
    k: int = 3
    balanced: bool = False
    shots: tuple = (MAX,)
    draws: int = 5
    seed: int = 0


def _class_scores(y_true, y_pred, n_classes) -> dict:
    from sklearn.metrics import balanced_accuracy_score, f1_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, labels=np.unique(y_true), average="macro", zero_division=0)),
        }


def _reg_scores(y_true, y_pred) -> dict:
    from sklearn.metrics import r2_score

    return {"r2": float(r2_score(y_true, y_pred)), "rmse": float(np.sqrt(np.mean((y_true - y_pred) ** 2)))}


def evaluate(X: np.ndarray, y: np.ndarray, folds: np.ndarray | Sequence[np.ndarray], spec: EvalSpec,
             n_classes: int | None) -> dict:
    """Cross-validated scores of one feature set.

    X: (N, C) float32 features; y: (N,) class indices (n_classes given) or float
    targets (n_classes None: regression). folds: one (N,) fold-id array, or several
    (repeated random fold assignments). Returns per shot count the mean, std and
    count of each metric over (assignment, fold, draw), and for classification at the
    largest shot count the pooled confusion matrix and per-class recall.
    """
    if isinstance(folds, np.ndarray):
        folds = [folds]
    rng = np.random.default_rng(spec.seed)
    classify = n_classes is not None
    out: dict = {}
    for shots in spec.shots:
        if not classify and shots != MAX:
            continue  # n-shot sampling is per class; regression uses all labels
        scores: list[dict] = []
        confusion = np.zeros((n_classes, n_classes), np.int64) if classify else None
        skipped = 0
        for assignment in folds:
            for f in np.unique(assignment):
                train, test = np.flatnonzero(assignment != f), np.flatnonzero(assignment == f)
                for _ in range(1 if shots == MAX else spec.draws):
                    pick = train[draw_shots(y[train], shots, rng)] if classify else train
                    if classify and np.unique(y[pick]).size < 2:
                        skipped += 1
                        continue
                    model = fit(make_model(spec.model, spec.k, spec.balanced, spec.seed), X[pick], y[pick])
                    pred = model.predict(X[test])
                    if classify:
                        scores.append(_class_scores(y[test], pred, n_classes))
                        np.add.at(confusion, (y[test], pred.astype(int)), 1)
                    else:
                        scores.append(_reg_scores(y[test], pred))
        key = str(shots)
        out[key] = {m: {"mean": float(np.mean([s[m] for s in scores])) if scores else None,
                        "std": float(np.std([s[m] for s in scores])) if scores else None}
                    for m in (("balanced_accuracy", "macro_f1") if classify else ("r2", "rmse"))}
        out[key]["n"] = len(scores)
        out[key]["skipped"] = skipped
        if classify:
            with np.errstate(invalid="ignore", divide="ignore"):
                recall = np.diag(confusion) / confusion.sum(axis=1)
            out[key]["per_class_recall"] = [None if np.isnan(r) else float(r) for r in recall]
            out[key]["confusion"] = confusion.tolist()
    return out


def parse_shots(text: str) -> tuple:
    """"1,10,max" -> (1, 10, "max"); InputError on anything else."""
    out = []
    for part in text.split(","):
        part = part.strip().lower()
        if part == MAX:
            out.append(MAX)
        elif part.isdigit() and int(part) > 0:
            out.append(int(part))
        else:
            raise InputError(f"--shots takes positive integers and 'max' separated by commas (e.g. 1,10,max), not {text!r}.")
    return tuple(out)
