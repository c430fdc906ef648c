"""An aggregate exactly at its exempt quantity is allowed; only more than it is exceeded.

HK Cap. 295 (FSD) gives exempt quantities as the most that may be stored without
a licence, so 100 L of a class 8 substance on general premises is within the exemption (an
alert at the site's fraction, not an action) and anything above it is not.
"""

from __future__ import annotations

import pytest

from facility.config.schema import HazmatCfg, Store, Substance
from hazmat.exempt import ExemptLine, aggregate
from hazmat.licence import check_licences

SUBS = (Substance(id="h2so4", name="Sulfuric acid", un="UN1830", dg_class="8", unit="L"),
        Substance(id="naoh", name="Sodium hydroxide", un="UN1823", dg_class="8", unit="kg"),
        Substance(id="silane", name="Silane", un="UN2203", dg_class="2.1", unit="L_wc"),
        Substance(id="diesel", name="Diesel", un="UN1202", dg_class="3A", unit="L"))
BY_ID = {s.id: s for s in SUBS}
EX = Store(id="EX", site="A", premises="general", compartments=("a",))
EX_IND = Store(id="EXI", site="B", premises="industrial", compartments=("a",))


@pytest.mark.parametrize("stock,premises,limit", [
    ([("h2so4", 100.0, "L")], "general", 100.0),
    ([("h2so4", 60.0, "L"), ("naoh", 40.0, "kg")], "general", 100.0),  # L and kg of one group
    ([("h2so4", 1000.0, "L")], "industrial", 1000.0),
    ([("silane", 300.0, "L_wc")], "general", 300.0),
    ([("silane", 450.0, "L_wc")], "industrial", 450.0),
])
def test_exactly_at_the_exempt_quantity_is_not_exceeded(stock, premises, limit):
    (line,) = aggregate(stock, BY_ID, premises)
    assert line.total == limit and line.limit == limit
    assert not line.exceeded
    more = stock[:-1] + [(stock[-1][0], stock[-1][1] + 0.001, stock[-1][2])]
    (over,) = aggregate(more, BY_ID, premises)
    assert over.exceeded


def test_exempt_line_boundaries():
    assert not ExemptLine("8", 100.0, "L", 100.0, "general").exceeded
    assert ExemptLine("8", 100.5, "L", 100.0, "general").exceeded
    assert not ExemptLine("8", 0.0, "L", 100.0, "general").exceeded
    # a class with no exempt quantity: any stock is exceeded, none is not
    assert ExemptLine("3A", 0.5, "L", None, "general").exceeded
    assert not ExemptLine("3A", 0.0, "L", None, "general").exceeded


def test_licence_check_at_the_exempt_quantity_is_an_alert_not_an_action():
    hz = HazmatCfg(substances=SUBS, stores=(EX, EX_IND))
    (f,) = check_licences(hz, [("EX", "h2so4", 100.0, "L")])
    assert (f.severity, f.kind, f.subject) == ("alert", "exempt", "8")
    (f,) = check_licences(hz, [("EX", "h2so4", 100.5, "L")])
    assert (f.severity, f.kind, f.subject) == ("action", "exempt", "8")
    (f,) = check_licences(hz, [("EXI", "h2so4", 1000.0, "L")])
    assert f.severity == "alert"
