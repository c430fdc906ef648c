"""Dangerous goods end to end: the ledger CLI beside the running service.

A receipt that puts chlorine beside silane, or takes a store past its licence, becomes an
alarm in the service and a `facility hazmat check` finding; a gas leak raises the
detector's alarms and produces STEL/TWA samples. Real simulator, real SQLite, real CLI.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from facility.config import parse_config
from facility.domain.model import now_ms
from facility.store import Store
from tests.fixtures.service import config_text, wait_for

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

HAZMAT = {
    "substances": [{"id": "silane", "name": "Silane", "un": "UN2203", "class": "2.1",
                    "unit": "L_wc"},
                   {"id": "chlorine", "name": "Chlorine", "un": "UN1017", "class": "2.3",
                    "subsidiary": ["5.1", "8"], "unit": "L_wc"}],
    "stores": [{"id": "GS", "site": "S", "zone": "Z2", "premises": "industrial",
                "licence": "DG-TEST-1", "licensed_max": {"2.1": 100.0, "2.3": 100.0},
                "compartments": ["cab-1", "cab-2", "rack"]}],
}


def _facility(tmp_path, url):
    text = config_text(str(tmp_path / "fms.db"), url, roles=("technician", "hazmat"),
                       hazmat=HAZMAT)
    path = tmp_path / "config.toml"
    path.write_text(text)
    return parse_config(text, base_dir=str(tmp_path)), path


def _cli(path, *args):
    return subprocess.run([sys.executable, "-m", "facility", *args, "--config", str(path)],
                          capture_output=True, text=True, cwd=ROOT)


def _receive(path, container, substance, qty, compartment):
    return _cli(path, "hazmat", "receive", "--container", container, "--substance", substance,
                "--quantity", str(qty), "--unit", "L_wc", "--store", "GS", "--compartment",
                compartment, "--reason", "delivery note 4711")


def test_segregation_licence_and_gas_leak_become_alarms(tmp_path, receiver, start_service):
    cfg, path = _facility(tmp_path, receiver.url)
    run = start_service(cfg)
    ok = _receive(path, "CYL-1", "silane", 47, "cab-1")
    assert ok.returncode == 0, ok.stderr
    assert _cli(path, "hazmat", "check").returncode == 0
    mixed = _receive(path, "CYL-2", "chlorine", 10, "cab-1")
    assert mixed.returncode == 0, mixed.stderr
    assert "warning" in mixed.stderr and "separated from" in mixed.stderr, mixed.stderr
    check = _cli(path, "hazmat", "check")
    assert check.returncode == 1 and "segregation" in check.stdout, check.stdout
    seg = "S.hazmat_segregation:action_high"
    assert wait_for(lambda: run.state(seg).active), "no segregation alarm"
    over = _receive(path, "CYL-3", "silane", 60, "rack")  # 107 > 100 L_wc licensed
    assert over.returncode == 0, over.stderr
    lic = "GS.stock_2.1:action_high"
    assert wait_for(lambda: run.state(lic).active), "no licence alarm"
    assert "DG-TEST-1" in run.call(lambda: run.svc.book.metas[lic].source)
    # moving the chlorine out clears the segregation finding and its alarm
    moved = _cli(path, "hazmat", "move", "--container", "CYL-2", "--store", "GS",
                 "--compartment", "cab-2", "--reason", "segregate")
    assert moved.returncode == 0, moved.stderr
    assert wait_for(lambda: not run.state(seg).active)
    # over-issue is refused and writes nothing
    before = _cli(path, "hazmat", "stock").stdout
    refused = _cli(path, "hazmat", "issue", "--container", "CYL-1", "--quantity", "500",
                   "--unit", "L_wc", "--reason", "too much")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert _cli(path, "hazmat", "stock").stdout == before
    # a gas leak: the detector's own bits alarm, exposure samples are derived
    run.call(run.sim.set_scenario, "gas-leak", "GD-1")
    assert wait_for(lambda: run.state("GD-1:gas_high").active)
    t0 = now_ms()
    assert wait_for(lambda: _exposure(cfg, t0))
    run.stop()
    audit = _cli(path, "audit", "verify")
    assert audit.returncode == 0, audit.stdout + audit.stderr


def _exposure(cfg, since_ms):
    with Store(cfg.db_path, readonly=True) as store:
        rows = [r for r in store.iter_samples(since_ms, now_ms() + 1)
                if r.point in ("GD-1.stel_15min", "GD-1.twa_8h")]
    return {r.point for r in rows if r.value and r.value > 0} == {"GD-1.stel_15min",
                                                                     "GD-1.twa_8h"}
