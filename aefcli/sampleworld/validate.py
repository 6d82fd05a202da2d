"""Offline STAC validation: the core JSON schemas that ship with pystac, no network.

pystac bundles the STAC 1.1.0 core schemas (catalog, collection, item, GeoJSON)
but fetches extension schemas from stac-extensions.github.io. Without network
those are skipped and listed in the result; their fields are checked by the
sample-world tests instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TYPES = {"Catalog": "CATALOG", "Collection": "COLLECTION", "Feature": "ITEM"}


@dataclass(frozen=True)
class Validation:
    """objects: STAC JSON files validated against their core schema;
    skipped_extensions: extension schema URLs that could not be checked offline."""

    objects: int
    skipped_extensions: tuple[str, ...]


def _offline_validator() -> Any:
    from pystac.validation.stac_validator import JsonSchemaSTACValidator

    class OfflineValidator(JsonSchemaSTACValidator):
        skipped: set[str] = set()

        def validate_extension(self, stac_dict, stac_object_type, stac_version, extension_id, href=None):  # type: ignore[no-untyped-def]
            if extension_id not in self.schema_cache:
                self.skipped.add(extension_id)
                return None
            return super().validate_extension(stac_dict, stac_object_type, stac_version, extension_id, href)

    return OfflineValidator()


def validate_catalog(root: Path) -> Validation:
    """Validate every STAC JSON file under `root` (catalog, collections, items) against
    the core STAC schemas, reading the files as written. Raises
    pystac.errors.STACValidationError on the first invalid object."""
    from pystac import STACObjectType

    validator = _offline_validator()
    validator.skipped = set()
    count = 0
    for path in sorted(Path(root).rglob("*.json")):
        doc = json.loads(path.read_text())
        kind = _TYPES.get(doc.get("type", ""))
        if kind is None or "stac_version" not in doc:
            continue
        validator.validate(doc, STACObjectType[kind], doc["stac_version"], doc.get("stac_extensions", []), str(path))
        count += 1
    return Validation(count, tuple(sorted(validator.skipped)))
