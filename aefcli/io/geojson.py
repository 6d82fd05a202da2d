"""Reading GeoJSON files: one place for the one-line errors every reader needs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aefcli.errors import InputError


def read_features(path: str | Path, what: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The features of a GeoJSON FeatureCollection (or a single Feature) and the whole document.

    what: the file's role in messages ("label file", "text file"). Missing, unparsable,
    non-GeoJSON or empty files raise InputError with one line saying what to fix.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{what} {path} does not exist.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{what} {path} is not valid GeoJSON ({err.__class__.__name__}: {err}); fix the file.") from None
    if not isinstance(doc, dict) or doc.get("type") not in ("FeatureCollection", "Feature"):
        raise InputError(f"{what} {path} is not a GeoJSON FeatureCollection or Feature.")
    features = doc.get("features") if doc["type"] == "FeatureCollection" else [doc]
    if not isinstance(features, list) or not features:
        raise InputError(f"{what} {path} has no features; give at least one point or polygon.")
    return features, doc
