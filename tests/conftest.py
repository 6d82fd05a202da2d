"""Shared fixtures: the real-data folder and real local STAC / file services."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


@pytest.fixture
def stac_api():
    """A factory: stac_api(catalog_path) serves it through rustac + a Range server.

    Returns a ServedCatalog (api_url, files_url); the services stop after the test.
    """
    import contextlib

    from aefcli.io.local_services import serve_catalog

    stack = contextlib.ExitStack()

    def start(catalog_path):
        return stack.enter_context(serve_catalog(catalog_path))

    with stack:
        yield start
