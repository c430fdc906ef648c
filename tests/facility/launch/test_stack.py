"""The demo's ``Stack`` (facility/launch.py): a service that cannot start is reported to the
starter, never taken for a running one (the campus demo's sites and ``facility demo`` build on
``Stack.start``)."""

from __future__ import annotations

import pytest

from facility.config import load_config
from facility.launch import Stack
from tests.fixtures.config import write_config, zone


def test_a_service_that_cannot_open_its_database_fails_start(tmp_path):
    (tmp_path / "not-a-folder").write_text("a file where the database folder should be")
    cfg = load_config(str(write_config(tmp_path / "config.toml",
                                       storage={"path": "not-a-folder/facility.db"},
                                       zones=[zone("Z1", iso_class=7, area_m2=10)])))
    stack = Stack(cfg, simulate=False)
    with pytest.raises(Exception) as failed:
        stack.start(timeout_s=120)
    assert not isinstance(failed.value, TimeoutError)
    assert "did not start within" not in str(failed.value)
    assert stack.done.wait(30) and stack.error is failed.value
    assert stack.story_t0 is None  # no committed cycle: the demo's story never started
