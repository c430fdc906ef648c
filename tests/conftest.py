"""The fixture layer every test folder shares (the helpers live in ``tests/fixtures/``).

* ``config_file``: write a facility configuration from zones/devices/operators (the one TOML
  builder, ``tests.fixtures.config``) and get its path.
* ``receiver``: a loopback HTTP inbox standing in for the pager and the dead-man's switch.
* ``start_service``: the simulator and the real service running on the test facility
  (``tests.fixtures.service``), stopped at the end of the test.
* ``action_server``: the real action socket of a database with a recording handler
  (``tests.fixtures.actions``), for clients tested without a service.

Heavy modules are imported inside the fixtures, so a test that uses none of them does not
pay for numba or pymodbus.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def config_file(tmp_path):
    """``config_file(name="config.toml", **sections) -> Path`` in the test's tmp folder."""
    from tests.fixtures.config import write_config

    def write(name: str = "config.toml", **sections):
        return write_config(tmp_path / name, **sections)

    return write


@pytest.fixture
def receiver():
    """Pages (POST) and heartbeats (GET) received on 127.0.0.1, with arrival times."""
    from tests.fixtures.service import Receiver

    inbox = Receiver()
    yield inbox
    inbox.close()


@pytest.fixture
def start_service(tmp_path, receiver):
    """``start_service(cfg=None, before=None) -> Running``: simulator + service on a loop
    thread, ready after two committed cycles.  ``cfg`` defaults to the test facility paging
    ``receiver``; ``run.stop()`` stops it early (to read the database after a clean stop),
    and every service still running is stopped when the test ends."""
    from tests.fixtures.service import Running, make_config

    started: list[Running] = []

    def start(cfg=None, before=None) -> Running:
        run = Running(cfg if cfg is not None else make_config(tmp_path, receiver.url),
                      before=before)
        started.append(run)
        return run.start()

    yield start
    for run in started:
        run.stop()


@pytest.fixture
def action_server():
    """``action_server(db_path, reply=None) -> Recorder``: the real ActionServer on
    ``db_path``'s socket; ``Recorder.calls`` lists (login, request) as they arrive."""
    from tests.fixtures.actions import ActionServers

    servers = ActionServers()
    yield servers.start
    servers.close()
