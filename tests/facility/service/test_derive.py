"""The service's live pressure cascades (``facility.service.derive.Deriver``).

docs/ARCHITECTURE.md "Pressure cascade": a zone measured against a common reference is combined into
``ZONE - REFERENCE`` at each good sample of either input, using the other input's latest
good sample if it is no older than ``max_skew_s`` (default 2 x scan_s); its quality is the
worse of the two. A transmitter measuring the zone directly passes through, inverted when
it measures ``REFERENCE - ZONE``. The Deriver is driven with a real catalogue built from a
real configuration, and checked against the plain-Python twin of the kernel.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facility.catalogue import build_catalogue
from facility.config import parse_config
from facility.domain.model import Quality, Sample
from facility.service.derive import Deriver, max_skew_s
from tests.fixtures.config import device, facility_toml, zone
from tests.reference import cascade_ref

T0 = 1_700_000_000_000  # ms
GOOD, BAD, COMM, STALE = Quality.GOOD, Quality.BAD, Quality.COMM, Quality.STALE


def _dp(id: str, port: int, zone_id: str, measures: str, scan_s: float) -> dict:
    return device(id, port, zone=zone_id, scan_s=scan_s, timeout_s=scan_s / 2,
                  profile="dp-transmitter", points=[{"name": "dp", "measures": measures}])


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    # ROOM is measured against ambient, as is its reference CORR: ROOM - CORR is derived
    # from two transmitters. CORR has its own transmitter against ambient (direct);
    # STORE is kept below CORR and its transmitter measures the other way round, CORR -
    # STORE (inverted). LAB pairs like ROOM but configures its own max_skew_s.
    text = facility_toml(
        zones=[zone("ROOM", iso_class=7, reference="CORR", min_dp_pa=10),
               zone("CORR", iso_class=8, reference="ambient", min_dp_pa=5),
               zone("STORE", kind="store", reference="CORR", min_dp_pa=-5),
               zone("LAB", iso_class=8, reference="CORR", min_dp_pa=10, max_skew_s=5.0)],
        devices=[_dp("DA", 15001, "ROOM", "ROOM - ambient", 1.0),
                 _dp("DB", 15002, "CORR", "CORR - ambient", 0.5),
                 _dp("DC", 15003, "STORE", "CORR - STORE", 1.0),
                 _dp("DD", 15004, "LAB", "LAB - ambient", 1.0)])
    return parse_config(text, base_dir=str(tmp_path_factory.mktemp("derive")))


@pytest.fixture
def deriver(cfg):
    return Deriver(build_catalogue(cfg), cfg)


def S(point: str, t_s: float, value: float | None, q: Quality = GOOD) -> Sample:
    return Sample(point, T0 + int(round(t_s * 1000)), value, q)


def of(out: list[Sample], point: str) -> list[tuple[float, float | None, Quality]]:
    return [((s.ts_ms - T0) / 1000, s.value, s.quality) for s in out if s.point == point]


def test_the_catalogue_plans_a_pair_a_direct_and_an_inverted_cascade(cfg):
    plans = {c.id: (c.plus, c.minus, c.invert) for c in build_catalogue(cfg).cascades}
    assert plans == {"ROOM.dp_cascade": ("DA.dp", "DB.dp", False),
                     "CORR.dp_cascade": ("DB.dp", None, False),
                     "STORE.dp_cascade": ("DC.dp", None, True),
                     "LAB.dp_cascade": ("DD.dp", "DB.dp", False)}


def test_a_minus_b_is_positive_when_the_room_is_higher(deriver):
    # ROOM at 30 Pa over ambient, CORR at 12 Pa: ROOM is 18 Pa above CORR
    out = deriver.derive([S("DA.dp", 0.0, 30.0), S("DB.dp", 0.2, 12.0)])
    assert of(out, "ROOM.dp_cascade") == [(0.0, None, STALE), (0.2, 18.0, GOOD)]
    out = deriver.derive([S("DA.dp", 1.0, 10.0)])  # the room drops below the corridor
    assert of(out, "ROOM.dp_cascade") == [(1.0, -2.0, GOOD)]
    # derived at every good sample of either input, with the other's latest good value
    out = deriver.derive([S("DB.dp", 1.5, 4.5), S("DA.dp", 2.0, 10.25)])
    assert of(out, "ROOM.dp_cascade") == [(1.5, 5.5, GOOD), (2.0, 5.75, GOOD)]


def test_direct_transmitter_passes_through_and_an_inverted_one_flips(deriver):
    out = deriver.derive([S("DB.dp", 0.0, 7.5), S("DC.dp", 0.1, 8.0), S("DC.dp", 1.1, None, COMM)])
    assert of(out, "CORR.dp_cascade") == [(0.0, 7.5, GOOD)]
    # DC measures CORR - STORE = +8: STORE is 8 Pa below CORR, STORE - CORR = -8
    assert of(out, "STORE.dp_cascade") == [(0.1, -8.0, GOOD), (1.1, None, COMM)]


def test_other_input_older_than_max_skew_gives_stale(deriver, cfg):
    cat = build_catalogue(cfg)
    pair = next(c for c in cat.cascades if c.id == "ROOM.dp_cascade")
    assert max_skew_s(cat, pair) == 2.0  # 2 x the slower scan_s (DA 1.0 s, DB 0.5 s)
    out = deriver.derive([S("DA.dp", 0.0, 30.0), S("DB.dp", 2.0, 12.0)])
    assert of(out, "ROOM.dp_cascade")[-1] == (2.0, 18.0, GOOD)  # exactly max_skew_s apart
    out = deriver.derive([S("DB.dp", 2.001, 12.0)])
    assert of(out, "ROOM.dp_cascade") == [(2.001, None, STALE)]  # DA's 30 Pa is too old now
    # an input whose samples arrive late: DB at 10 s after DA at 15 s is 5 s apart
    deriver.derive([S("DA.dp", 15.0, 30.0)])
    out = deriver.derive([S("DB.dp", 10.0, 12.0)])
    assert of(out, "ROOM.dp_cascade") == [(10.0, None, STALE)]
    out = deriver.derive([S("DB.dp", 14.0, 11.0)])  # 1 s before DA's sample: paired
    assert of(out, "ROOM.dp_cascade") == [(14.0, 19.0, GOOD)]


def test_the_zone_max_skew_s_from_the_config_wins(deriver, cfg):
    cat = build_catalogue(cfg)
    lab = next(c for c in cat.cascades if c.id == "LAB.dp_cascade")
    assert max_skew_s(cat, lab) == 5.0
    out = deriver.derive([S("DD.dp", 0.0, 20.0), S("DB.dp", 4.5, 5.0), S("DB.dp", 5.5, 6.0)])
    assert of(out, "LAB.dp_cascade") == [(0.0, None, STALE), (4.5, 15.0, GOOD),
                                         (5.5, None, STALE)]
    # ROOM has no DA sample at all: nothing to pair the same DB samples with
    assert of(out, "ROOM.dp_cascade") == [(4.5, None, STALE), (5.5, None, STALE)]


def test_quality_is_the_worse_of_the_two(deriver):
    deriver.derive([S("DA.dp", 0.0, 30.0), S("DB.dp", 0.0, 12.0)])
    # DB's latest read failed but its last good value is recent: still good
    out = deriver.derive([S("DB.dp", 0.5, None, COMM), S("DA.dp", 1.0, 31.0)])
    assert of(out, "ROOM.dp_cascade") == [(1.0, 19.0, GOOD)]
    # DB not answering for longer than max_skew_s: the derived sample says so
    out = deriver.derive([S("DB.dp", 2.5, None, COMM), S("DA.dp", 3.0, 32.0)])
    assert of(out, "ROOM.dp_cascade") == [(3.0, None, COMM)]
    # DB answering with a reading its instrument marks bad
    out = deriver.derive([S("DB.dp", 3.5, 99.0, BAD), S("DA.dp", 4.0, 33.0)])
    assert of(out, "ROOM.dp_cascade") == [(4.0, None, BAD)]
    # a bad sample of an input is not a time to derive at
    assert of(deriver.derive([S("DA.dp", 4.5, 1.0, BAD)]), "ROOM.dp_cascade") == []


SERIES = st.lists(st.tuples(st.integers(0, 40), st.integers(-300, 300),
                            st.sampled_from([0, 0, 0, 0, 1, 2])), max_size=25)


def _series(draw_list):
    """Time-ordered samples of one input, one per time (first wins, as the store keeps)."""
    seen, out = set(), []
    for t, v10, q in sorted(draw_list, key=lambda x: x[0]):
        if t in seen:
            continue
        seen.add(t)
        out.append((float(t) / 2, v10 / 10.0 if q != 2 else math.nan, q))
    return out


@settings(max_examples=120, deadline=None)
@given(a=SERIES, b=SERIES, data=st.data())
def test_live_cascade_equals_the_plain_python_twin(cfg, a, b, data):
    """Whatever the batches, the service derives what ``tests.reference.cascade_ref`` does."""
    a, b = _series(a), _series(b)
    expected = [(t, None if v is None else round(v, 3), q)
                for t, v, q in cascade_ref(a, b, 2.0)]
    cuts = sorted(data.draw(st.lists(st.integers(0, 21), max_size=4)))
    d = Deriver(build_catalogue(cfg), cfg)
    got = []
    edges = [-1.0, *cuts, 1e9]
    for lo, hi in zip(edges, edges[1:]):
        batch = [S(pid, t, None if math.isnan(v) else v, Quality(q))
                 for pid, series in (("DA.dp", a), ("DB.dp", b)) for t, v, q in series
                 if lo <= t < hi]
        batch.reverse()  # arrival order across devices is not time order
        got += [(t, v, int(q)) for t, v, q in of(d.derive(batch), "ROOM.dp_cascade")]
    assert got == expected
