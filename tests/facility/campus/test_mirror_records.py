"""What central's mirror holds besides samples, on a real mosquitto: the site's event rows
(live, replayed and resent), and an auditor's export of the mirror that ``facility verify``
accepts and says what it proves.

The site database is written through the real ``Store`` (alarm rows and their events as the
service writes them, in the same cycle); uplink and central run in threads of the test;
``facility alarms``, ``export`` and ``verify`` run through the real CLI.
"""

from __future__ import annotations

import csv
import json
import sqlite3

import pytest
from click.testing import CliRunner

from facility.campus import sparkplug as sp
from facility.campus.central import Central, mirror_path
from facility.campus.uplink import Uplink
from facility.cli import cli
from facility.config import load_config
from facility.domain.model import iso_ms, now_ms
from facility.store import Cycle, Store, StoreError
from tests.fixtures.campus import Background, Site, central_config, poll, site_config

ALARM = "DP-1.dp:high"
EVENT_KEYS = ("alarm_id", "occurrence", "event", "state_from", "state_to", "ts_ms",
              "detected_ms", "value", "limit", "source", "actor", "reason", "config_version",
              "details", "actor_name", "actor_roles")


class AlarmSite(Site):
    """A site whose cycles raise, acknowledge and clear one alarm, with its event rows."""

    def alarm_cycle(self, occurrence: int, step: str) -> None:
        self.cycle()
        t = self.t
        alarm = {"id": ALARM, "priority": "high", "occurrence": occurrence, "limit": 15.0,
                 "source": "DP-1.dp", "zone": "Z1", "site": "S", "point": "DP-1.dp",
                 "updated_ms": t}
        if step == "raise":
            alarm.update(state="UNACK", active=1, acked=0, onset_ms=t, detected_ms=t)
            ev = {"event": "raise", "state_from": "NORM", "state_to": "UNACK", "value": 15.5,
                  "actor": "service", "details": {"rule": "dp high", "n": occurrence}}
        elif step == "ack":
            alarm.update(state="ACKED", acked=1, ack_by="ctm", ack_reason="checked the door",
                         ack_ms=t)
            ev = {"event": "ack", "state_from": "UNACK", "state_to": "ACKED", "actor": "ctm",
                  "reason": "checked the door", "actor_name": "Chan Tai Man",
                  "actor_roles": "operator"}
        else:
            alarm.update(state="NORM", active=0)
            ev = {"event": "clear", "state_from": "ACKED", "state_to": "NORM", "value": 12.0,
                  "actor": "service"}
        ev.update(alarm_id=ALARM, occurrence=occurrence, ts_ms=t, detected_ms=t,
                  limit=15.0, source="DP-1.dp")
        self.store.write_cycle(Cycle(alarms=[alarm], events=[ev]))

    def occurrence(self, k: int) -> None:
        for step in ("raise", "ack", "clear"):
            self.alarm_cycle(k, step)


def edge_events(site: Site) -> list[tuple]:
    return [tuple(e.get(k) for k in EVENT_KEYS) for e in site.store.events()]


def mirror_events(cfg_path: str) -> list[tuple]:
    cfg = load_config(cfg_path)
    path = mirror_path(cfg, cfg.central.sites[0])
    try:
        with Store(path, readonly=True) as m:
            return [tuple(e.get(k) for k in EVENT_KEYS) for e in m.events()]
    except (StoreError, sqlite3.Error):  # the mirror is not created (or migrated) yet
        return []


def sorted_events(rows: list[tuple]) -> list[tuple]:
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))


@pytest.fixture
def site(tmp_path, broker):
    s = AlarmSite(site_config(tmp_path, broker.port, primary_host_id="central"))
    s.cycle()
    yield s
    s.close()


def test_event_rows_are_mirrored_live_replayed_and_resent_once(site, tmp_path, broker,
                                                                recorder):
    """Each cycle's event rows travel as ``Records/Events`` (declared in NBIRTH with its
    alias) and land in the mirror's events once: live, replayed as history after an outage,
    and after central asks for a range again. ``facility alarms --config central.toml``
    shows the acknowledging operator's recorded name, which lives in the events."""
    cpath = central_config(tmp_path, broker.port)
    central = Central(load_config(cpath))
    run = Background(central)
    up = Background(Uplink(load_config(str(tmp_path / "site.toml")), poll_s=0.05))
    m = central.mirrors[("hk", "MEC")]
    try:
        assert poll(lambda: m.born, 60)
        site.occurrence(1)  # live
        assert poll(lambda: len(mirror_events(cpath)) == 3, 60), mirror_events(cpath)
        up.stop()  # the edge is away: occurrence 2 waits in the site's database
        site.occurrence(2)
        up = Background(Uplink(load_config(str(tmp_path / "site.toml")), poll_s=0.05))
        assert poll(lambda: m.born and m.online, 60)
        site.occurrence(3)  # live again, while occurrence 2 replays
        want = edge_events(site)
        assert len(want) == 9
        assert poll(lambda: sorted_events(mirror_events(cpath)) == sorted_events(want), 90), (
            len(mirror_events(cpath)))
        historical = {c for (c,) in Store(m.path, readonly=True).conn.execute(
            "SELECT edge_cycle FROM campus_cycles WHERE historical = 1")}
        with Store(m.path, readonly=True) as mirror:
            replayed = mirror.conn.execute(
                "SELECT count(*) FROM campus_events WHERE edge_cycle IN (%s)"
                % ",".join(str(c) for c in historical or {0})).fetchone()[0]
        assert replayed >= 3  # occurrence 2 came as history
        # central asks for every cycle again: the events stay as they are, once each
        cycles_before = central.stats["cycles"]
        head = site.store.cycle_head()
        p = sp.Payload()
        p.timestamp = 1
        sp.add_metric(p, name="Node Control/Resend", ts_ms=1, datatype=sp.STRING,
                      value=f"1-{head}")
        recorder.publish("spBv1.0/hk/NCMD/MEC", p.SerializeToString(), qos=1)
        n_cycles = len(site.store.cycle_digests(0, 10**6))
        assert poll(lambda: central.stats["cycles"] >= cycles_before + n_cycles - 1, 90), (
            central.stats["cycles"], cycles_before, n_cycles)
    finally:
        up.stop()
        run.stop()
    births = [metrics for _t, nb, _q, _r in recorder.of("NBIRTH") for metrics in nb.metrics
              if metrics.name == "Records/Events"]
    assert births and births[0].alias == 14 and births[0].datatype == sp.STRING
    got = mirror_events(cpath)
    assert sorted_events(got) == sorted_events(edge_events(site))  # nothing twice, nothing lost
    res = CliRunner().invoke(cli, ["alarms", "--json", "--config", cpath])
    assert res.exit_code == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    mine = [r for r in rows if r["id"] == ALARM]
    assert mine and mine[0]["occurrence"] == 3
    assert "Chan Tai Man" in json.dumps(mine[0])


def _csv(path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_a_mirror_export_verifies_and_says_what_it_proves(site, tmp_path, broker):
    """``facility export --config central.toml --site mec`` exports the mirror (samples,
    alarms, events, the mirror's own audit chain with its cycle digests), signed with
    central's key; ``facility verify`` accepts it, cross-checks the mirror's digests, checks
    the edge's signed chain head it carries and says that it is a mirror. Its samples and
    events equal the site's own export of the window."""
    from facility.store.keys import fingerprint, public_raw, signing_key
    from facility.store.witness import append_checkpoint, witness_path

    scfg = load_config(str(tmp_path / "site.toml"))
    key = signing_key(scfg, create=True)
    cpath = central_config(tmp_path, broker.port)
    central_fp = fingerprint(public_raw(signing_key(load_config(cpath), create=True)))
    site.t = now_ms() - 2000  # samples of now: the mirror's digest rows, written now, match
    central = Central(load_config(cpath))
    run = Background(central)
    up = Background(Uplink(scfg, poll_s=0.05))
    m = central.mirrors[("hk", "MEC")]
    try:
        assert poll(lambda: m.born, 60)
        t_from = site.t + 1
        for k in (1, 2):
            site.occurrence(k)
            for _ in range(5):
                site.cycle()
        t_to = t_from + 600_000  # the mirror's audit rows are written within it
        head = site.store.audit_head()
        append_checkpoint(witness_path(scfg), key, head["id"], head["hash"])
        assert poll(lambda: m.trust.get("row_id") == head["id"], 60), m.trust
        assert poll(lambda: len(mirror_events(cpath)) == 6, 60)
        last = site.store.cycle_head()
        assert poll(lambda: last in m.received, 60)
    finally:
        up.stop()
        run.stop()
    runner = CliRunner()
    res = runner.invoke(cli, ["export", "--config", cpath, "--site", "mec", "--from",
                              iso_ms(t_from), "--to", iso_ms(t_to), "--out",
                              str(tmp_path / "central-export")])
    assert res.exit_code == 0, (res.stdout, res.stderr)
    assert "mirror of site mec" in res.stdout
    res = runner.invoke(cli, ["verify", "--trust", central_fp, str(tmp_path / "central-export")])
    assert res.exit_code == 0, (res.stdout, res.stderr)
    assert f"origin: signed by trusted key {central_fp}" in res.stdout
    assert "mirror of mec" in res.stdout and "edge's signed chain head" in res.stdout
    cycles = int(res.stdout.split(" cycles cross-checked")[0].rsplit(";", 1)[1])
    assert cycles >= 16  # the mirror's own digest of every mirrored cycle
    # the site's own export of the same window: the same samples and event rows
    res = runner.invoke(cli, ["export", "--config", str(tmp_path / "site.toml"), "--from",
                              iso_ms(t_from), "--to", iso_ms(t_to), "--out",
                              str(tmp_path / "edge-export")])
    assert res.exit_code == 0, (res.stdout, res.stderr)
    for name, drop in (("samples.csv", ()), ("events.csv", ("event_id",))):
        edge = [{k: v for k, v in r.items() if k not in drop}
                for r in _csv(tmp_path / "edge-export" / name)]
        mirror = [{k: v for k, v in r.items() if k not in drop}
                  for r in _csv(tmp_path / "central-export" / name)]
        assert edge and sorted(map(str, mirror)) == sorted(map(str, edge)), name
    # a changed mirrored event is named, as in a site's export
    path = tmp_path / "central-export" / "events.csv"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("checked the door", "checked the window", 1), encoding="utf-8")
    res = runner.invoke(cli, ["verify", str(tmp_path / "central-export")])
    assert res.exit_code == 1 and "events.csv" in res.stderr


def test_a_mirror_export_names_a_bad_site_in_one_line(tmp_path):
    """An unknown ``--site`` and a site whose mirror does not exist yet are one-line errors."""
    cpath = central_config(tmp_path, 1883)
    runner = CliRunner()
    for site, words in (("nope", "unknown site 'nope'"), ("mec", "no mirror of site mec")):
        res = runner.invoke(cli, ["export", "--config", cpath, "--site", site, "--from",
                                  "2026-01-01", "--to", "2026-01-02", "--out",
                                  str(tmp_path / f"out-{site}")])
        assert res.exit_code != 0 and words in res.stderr, (res.stdout, res.stderr)
        assert "Traceback" not in res.stdout + res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
