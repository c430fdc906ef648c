"""The store fixture of the store tests: a real SQLite file with the module's ``POINTS``."""

from __future__ import annotations

import pytest

from facility.store import Store


@pytest.fixture
def store(tmp_path, request):
    s = Store(str(tmp_path / "var" / "facility.db"))
    s.register_points(request.module.POINTS)
    yield s
    s.close()
