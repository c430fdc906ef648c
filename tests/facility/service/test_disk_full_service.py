"""Disk full while the service runs: the real service (simulator, pollers, engine, store,
dispatcher) with its database on a small tmpfs that a filler file makes full.

The service stays up, holds its cycles (``HeldCycles``), raises the critical
``system:store_full`` alarm, and once the filler is deleted writes every held cycle in order:
every sample taken while the disk was full is in the database, and the alarm's page (which
is itself part of a held cycle, since the outbox lives in the database) reaches the loopback
receiver with its return. Needs ``mount -t tmpfs`` (the ``small_fs`` fixture skips, with the
reason, where mounting is not permitted).
"""

from __future__ import annotations

from facility.config import parse_config
from facility.service.socket import request
from facility.store import Store
from tests.fixtures.diskfull import small_fs, take_all_space  # noqa: F401 - small_fs is a fixture
from tests.fixtures.service import config_text, wait_for
from tests.fixtures.wait import hold

STORE_FULL = "system:store_full"
POINT = "DP-1.dp"  # polled every scan_s by the simulated dp transmitter
SCAN_S = 0.5  # DP-1's scan_s in tests.fixtures.service.config_text
FULL_CYCLES = 6  # cycles held before space returns: a full period of about 3 s


def test_service_survives_a_full_disk_alarms_and_stores_every_held_sample(
        small_fs, tmp_path, receiver, start_service):  # noqa: F811 - fixture imported above
    cfg = parse_config(config_text(str(small_fs / "fms.db"), receiver.url, heartbeat_s=0.5),
                       base_dir=str(tmp_path))
    run = start_service(cfg)
    svc = run.svc
    cycles: list[tuple[bool, list[tuple[str, int]]]] = []  # (written?, samples) per cycle
    write = svc.held.write

    def recording_write(cycle):
        """The real HeldCycles.write, remembering what each cycle carried and its outcome."""
        ok = write(cycle)
        cycles.append((ok, [(s.point, s.ts_ms) for s in cycle.samples]))
        return ok

    run.call(setattr, svc.held, "write", recording_write)
    assert wait_for(lambda: len(cycles) >= 1 and cycles[-1][0]), "no cycle written before full"

    filler = small_fs / "filler"
    take_all_space(filler)
    assert wait_for(lambda: run.call(lambda: len(svc.held)) >= FULL_CYCLES), (
        f"fewer than {FULL_CYCLES} cycles held: {sum(not ok for ok, _ in cycles)} of"
        f" {len(cycles)} not written")
    first_full = next(i for i, (ok, _) in enumerate(cycles) if not ok)
    assert all(ok for ok, _ in cycles[:first_full])
    # still up: polling and evaluating go on, the critical self-monitoring alarm is raised
    assert run.thread.is_alive() and not run.task.done()
    assert wait_for(lambda: run.state(STORE_FULL).active), "store_full was not raised"
    st = run.state(STORE_FULL)
    assert st.critical and st.priority == "critical"
    held_before = run.call(lambda: len(svc.held))
    n = run.cycles()
    assert wait_for(lambda: run.cycles() >= n + 2), "the service stopped cycling on a full disk"
    assert run.call(lambda: len(svc.held)) > held_before  # each new cycle is held, none lost

    # not recording: the dead-man's switch hears nothing (its own page is the notification)
    beats = len(receiver.beats)
    hold(2.5)  # five heartbeat intervals of full disk
    assert len(receiver.beats) <= beats + 1, "heartbeats went on while nothing was recorded"

    filler.unlink()  # space returns
    assert wait_for(lambda: run.call(lambda: len(svc.held) == 0 and svc.store.unfinished is None),
                    ), "held cycles were not written after space returned"
    recovered = next(i for i in range(first_full, len(cycles)) if cycles[i][0])
    beats = len(receiver.beats)
    assert wait_for(lambda: len(receiver.beats) > beats), "heartbeats did not resume"
    assert wait_for(lambda: run.state(STORE_FULL).state.value == "RTNUN"), (
        f"store_full did not return: {run.state(STORE_FULL).state}")
    # the raise was itself in a held cycle (the outbox is in the database): paged once written
    assert wait_for(lambda: "trigger" in receiver.actions_for(STORE_FULL)), receiver.pages
    # an unacknowledged return is paged only after the chattering window; acknowledged, the
    # returned alarm is resolved at once, on the pager too
    occ = run.state(STORE_FULL).occurrence
    request(cfg.db_path, {"action": "ack", "alarm": STORE_FULL, "occurrence": occ,
                          "reason": "disk space freed"})
    assert wait_for(lambda: run.state(STORE_FULL).state.value == "NORM")
    assert wait_for(lambda: "resolve" in receiver.actions_for(STORE_FULL)), receiver.pages
    pages = receiver.actions_for(STORE_FULL)  # one incident: its raise first, resolved last
    assert pages[0] == "trigger" and pages[-1] == "resolve" and pages.count("trigger") == 1, pages
    assert run.thread.is_alive() and not run.task.done()
    run.stop()
    assert run.error is None

    taken_full = {k for _, samples in cycles[first_full:recovered + 1] for k in samples}
    before = min(ts for p, ts in cycles[first_full - 1][1] if p == POINT) if first_full else None
    after = max(ts for p, ts in cycles[recovered][1] if p == POINT)
    assert sum(1 for p, _ in taken_full if p == POINT) >= FULL_CYCLES  # polled while full
    with Store(cfg.db_path, readonly=True) as store:
        stored = {(r.point, r.ts_ms) for r in store.iter_samples(0, 2**62)}
        gaps = store.audit_rows(action="store_gap")
        events = [e["event"] for e in store.events(alarm_id=STORE_FULL)]
    missing = taken_full - stored
    assert not missing, f"{len(missing)} sample(s) of the full period not stored: {sorted(missing)[:5]}"
    assert not gaps  # the buffer was not exhausted: nothing was dropped
    assert events[:3] == ["raise", "clear", "ack"], events  # the alarm's history is stored
    # no hole in one point's series across the full period: consecutive polls of DP-1.dp
    # from before the disk filled to after it recovered are at most a few scans apart
    start = before if before is not None else min(ts for p, ts in taken_full if p == POINT)
    series = sorted(ts for p, ts in stored if p == POINT and start <= ts <= after)
    steps = [b - a for a, b in zip(series, series[1:])]
    assert len(series) >= FULL_CYCLES and max(steps) <= 3 * SCAN_S * 1000, steps
