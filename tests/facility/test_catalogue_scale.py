"""Nothing quadratic in points or rules at start (docs/ARCHITECTURE.md "Data flow").

The shipped configuration is scaled to about 5 000 and 10 000 points (benchmarks/scale_config.py,
the same generator the service benchmark uses) and the catalogue and the service's set-up
(engine, alarm metadata, stale slots, suppression indexes) are built for each. The test counts,
it does not time: every Python line executed is counted with ``sys.settrace`` (a linear
search such as ``next(z for z in cfg.zones if ...)`` per point counts one line per element it
passes, inside generators too), and the count for twice the points must grow like the points,
not like their square.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from facility.catalogue import build_catalogue
from facility.config.loader import load_config
from facility.service.service import Service

ROOT = Path(__file__).resolve().parents[2]


def _scale_config():
    spec = importlib.util.spec_from_file_location("scale_config",
                                                  ROOT / "benchmarks" / "scale_config.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _lines(fn) -> int:
    n = 0

    def local(frame, event, arg):
        nonlocal n
        n += 1
        return local

    sys.settrace(lambda frame, event, arg: local)
    try:
        fn()
    finally:
        sys.settrace(None)
    return n


@pytest.fixture(scope="module")
def scaled(tmp_path_factory):
    mod = _scale_config()
    out = {}
    for n in (5000, 10000):
        path, points = mod.write_scaled(n, tmp_path_factory.mktemp("scaled") / f"s{n}.toml")
        out[n] = (load_config(str(path)), points)
    return out


def test_the_scaled_config_has_about_the_points_asked_for(scaled):
    for n, (cfg, points) in scaled.items():
        assert 0.8 * n <= points <= 1.2 * n
        assert len(build_catalogue(cfg).points) == points
    # the copies are the shipped kinds: as many zones and devices per point in both
    (c1, p1), (c2, p2) = scaled[5000], scaled[10000]
    assert len(c2.devices) / len(c1.devices) == pytest.approx(p2 / p1, rel=0.05)


@pytest.mark.parametrize("build", [build_catalogue, Service], ids=["catalogue", "service"])
def test_set_up_work_grows_linearly_with_points(scaled, build):
    (c1, p1), (c2, p2) = scaled[5000], scaled[10000]
    lines1 = _lines(lambda: build(c1))
    lines2 = _lines(lambda: build(c2))
    # linear: the lines run grow like the points (10 % allowance); before the dictionaries a
    # per-point scan of zones and points made them grow 1.43 x faster than the points
    assert lines2 / lines1 <= 1.1 * (p2 / p1), (lines1, lines2, p1, p2)
