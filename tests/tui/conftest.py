"""The TUI tests' shared fixtures: the shipped configuration and a real sample database
(``tests.fixtures.sample_db``); a module extends ``db`` by asking for it under its own name."""

from __future__ import annotations

import os

import pytest

from facility.config import load_config
from tests.fixtures import sample_db

CONFIG = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "config.toml")


@pytest.fixture(scope="module")
def cfg():
    return load_config(CONFIG)


@pytest.fixture
def db(cfg, tmp_path):
    path = str(tmp_path / "facility.db")
    sample_db.build(cfg, path)
    return path
