"""Shared fixtures: a small synthetic city generated once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The public data sets beside the repository; tests using them skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"public data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def small_city(tmp_path_factory) -> Path:
    """The `small` synthetic city (seed 7) as a data directory of Parquet tables (+ truth/)."""
    synth = pytest.importorskip("features.synth")
    out = tmp_path_factory.mktemp("small_city")
    synth.synthesize(profile="small", seed=7, out=out, progress=False)
    return out
