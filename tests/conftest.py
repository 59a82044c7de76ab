"""Shared fixtures. The real ML-100K lives outside the repository (licence): tests that need it skip."""

from __future__ import annotations

from pathlib import Path

import pytest

ML100K = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k" / "u.data"


@pytest.fixture
def ml100k_path() -> Path:
    if not ML100K.exists():
        pytest.skip(f"real ML-100K not found at {ML100K} (it is not redistributable)")
    return ML100K
