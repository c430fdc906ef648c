"""report.html never hides what it could not compute: a chart without data says "no data",
and a failure to read the data raises instead of drawing an empty chart.

A real export over a real database (``tests.fixtures.export``).
"""

from __future__ import annotations

import re

import pytest

from facility.records.export import ExportRequest, export, selected_points
from facility.records.report.html import render_report
from facility.records.report.stats import ReportData
from facility.store import Store
from tests.fixtures.export import build

DAY = 86_400_000


def _charts(html: str) -> list[str]:
    return re.findall(r"<svg.*?</svg>", html, re.S)


def test_a_chart_without_data_says_no_data(tmp_path):
    cfg, db, t0 = build(tmp_path, minutes=5)
    with Store(db, readonly=True) as store:
        export(cfg, store, ExportRequest(t0 - DAY, t0, str(tmp_path / "before")))
        export(cfg, store, ExportRequest(t0, t0 + DAY, str(tmp_path / "during")))
    before = _charts((tmp_path / "before" / "report.html").read_text())
    during = _charts((tmp_path / "during" / "report.html").read_text())
    assert len(before) == len(during) >= 3
    assert all('class="no-data"' in svg and ">no data<" in svg for svg in before)
    assert not any("no-data" in svg for svg in during)  # every chart has data that day


def test_a_failed_read_of_the_data_raises(tmp_path):
    cfg, db, t0 = build(tmp_path, minutes=5)
    store = Store(db, readonly=True)
    data = ReportData(cfg, store, t0, t0 + DAY, selected_points(store, None, None))
    data.set_events([])
    data.finish()
    store.close()  # the aggregates can no longer be read
    with pytest.raises(Exception, match="closed"):
        render_report(data)
