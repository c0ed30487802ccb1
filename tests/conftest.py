"""Fixtures shared across tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The real digits live outside the repository (see /work/shared/data/usps/README.md).
SHARED_USPS = Path(__file__).parents[2] / "shared/data/usps"


def find_usps_dir() -> Path | None:
    """$USPS_DATA if set, else the shared copy next to the repository; None if absent."""
    env = os.environ.get("USPS_DATA", "").strip()
    path = Path(env) if env else SHARED_USPS
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def usps_dir() -> Path:
    """Folder of the real USPS digits; skips the test when it is absent."""
    path = find_usps_dir()
    if path is None:
        where = os.environ.get("USPS_DATA", "").strip() or SHARED_USPS
        pytest.skip(f"real USPS data not found: no folder {where} (set $USPS_DATA to it)")
    return path


def pytest_collection_modifyitems(config, items):
    """In CI (REQUIRE_USPS=1) the real digits must be there: absence fails, never skips."""
    if os.environ.get("REQUIRE_USPS") == "1" and find_usps_dir() is None:
        raise pytest.UsageError(
            f"REQUIRE_USPS=1 but the USPS digits are not at {SHARED_USPS} or $USPS_DATA"
        )


@pytest.fixture
def no_data(monkeypatch):
    """As if no USPS digits were anywhere: the loader finds nothing, $USPS_DATA is unset."""
    from harness import data as D

    def nothing(*args, **kwargs):
        raise D.DataError("no USPS data (test stand-in)")

    monkeypatch.delenv("USPS_DATA", raising=False)
    monkeypatch.setattr(D, "load_usps", nothing)
