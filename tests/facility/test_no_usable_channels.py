"""A particle counter whose channels all read "disabled" has no usable channel: its
``not_sampling`` status is 1, an instrument alarm that is HIGH (and paged) in ISO <= 5 /
grade A-B rooms. Real parts: the shipped configuration, the simulator's counters over Modbus
(channels disabled in the simulator's enable registers), the poller, the catalogue's rules,
the engine, the alarm book and a SQLite outbox (``run`` from test_fault_priority)."""

from __future__ import annotations

from sensors.poller import poll_once
from sensors.simulator import Simulator
from tests.facility.test_fault_priority import PAGER_CHANNELS, SHIPPED, run


async def test_a_counter_with_every_channel_disabled_raises_an_instrument_alarm(tmp_path):
    async with Simulator(SHIPPED, ephemeral=True) as sim:
        for dev in ("MEC-PC-01", "MEC-PC-06"):  # ISO 5 (MEC-LITHO) and ISO 7 (MEC-GOWN)
            unit = sim.units[dev]
            unit.disabled_channels = {ch.size_um for ch in unit.cmap.channels}
        first = await poll_once(sim.client_config())
        second = await poll_once(sim.client_config())
    status = {s.point: s.value for s in first + second if s.point.endswith(".not_sampling")}
    assert status["MEC-PC-01.not_sampling"] == 1.0 and status["MEC-PC-06.not_sampling"] == 1.0
    assert status["MEC-PC-02.not_sampling"] == 0.0  # its channels are enabled
    # no particle value is produced from a disabled channel (garbage is never a point)
    assert not [s for s in first + second if s.point.startswith("MEC-PC-01.pc_")]
    samples = [s for s in first + second if s.point.endswith(".not_sampling")]
    samples.sort(key=lambda s: s.ts_ms)
    book, pages = run(SHIPPED, samples, tmp_path)
    high = book.states["MEC-PC-01.not_sampling:instrument"]
    assert high.active and high.priority == "high"
    assert "no usable channels" in book.metas["MEC-PC-01.not_sampling:instrument"].source
    assert pages == {"MEC-PC-01.not_sampling:instrument": PAGER_CHANNELS}
    other = book.states["MEC-PC-06.not_sampling:instrument"]
    assert other.active and other.priority == "low"  # the configured instrument priority
