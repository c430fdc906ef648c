"""report.html: self-contained, renders in real headless chromium, charts and tables per zone."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from facility.records.export import ExportRequest, export
from facility.store import Store
from tests.fixtures.export import build

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"),
                             shutil.which("google-chrome")) if p), None)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    cfg, db, t0 = build(tmp, minutes=40)
    out = tmp / "exp"
    with Store(db, readonly=True) as store:
        export(cfg, store, ExportRequest(t0, t0 + 2 * 86_400_000, str(out)))
    return out / "report.html", tmp


def test_report_is_self_contained_with_local_times(report):
    html = report[0].read_text()
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    assert "+08:00" in html  # local time with offset
    assert 'class="compliance"' in html and 'class="excursions"' in html
    assert "Z1.dp_cascade:action_low" in html  # the excursion, onset to clear
    assert "00:05:00" in html  # its duration: minutes 20..25
    assert "ISO 14644-1:2015 class 7" in html and "not applicable" in html


# Outside CI a machine without chromium skips this one test; in CI (.ci/run installs it) a
# missing browser is a failure, never a silent skip.
@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                    reason="chromium not found (apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(report):
    path, tmp = report
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", f"--user-data-dir={tmp / 'chrome-profile'}",
           "--enable-logging=stderr", "--v=0", "--dump-dom", path.as_uri()]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    dom = run.stdout
    sections = re.findall(r'<section class="zone" id="zone-([^"]+)">(.*?)</section>', dom, re.S)
    assert {z for z, _ in sections} == {"Z1", "Z2"}
    for zone, body in sections:
        assert body.count("<svg") >= 3, zone  # particle sizes (+ cascade for Z1)
        assert 'class="compliance"' in body and "<table" in body
    z1 = dict(sections)["Z1"]
    assert "Z1 pressure cascade" in z1 and 'class="limit action"' in z1
    assert 'id="alarm-performance"' in dom and 'class="top10"' in dom
    console = [ln for ln in run.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert console == []
