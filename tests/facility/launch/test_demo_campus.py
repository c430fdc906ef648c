"""`facility demo --campus`: the shipped campus configurations pass check-config and split the
example plant by site; the headless demo mirrors both sites' cycles into central's stores and
leaves no child behind; the console shows both sites in a real terminal (tmux) and quits on q;
without mosquitto the demo says how to install it.

The demo runs as a real subprocess in the test's own folder (a copy of config.toml and
deploy/campus/), so its var/demo-campus/ is the test's, and its broker and simulators listen on
free loopback ports."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from facility.config import load_config
from facility.store import Store
from tests.fixtures.mqtt import MOSQUITTO
from tests.fixtures.terminal import screen, tmux, wait_screen
from tests.fixtures.wait import wait_for

ROOT = Path(__file__).resolve().parents[3]
CAMPUS = ROOT / "deploy" / "campus"
SITES = {"MEC": "mec.toml", "MARS": "mars.toml"}

needs_mosquitto = pytest.mark.skipif(
    MOSQUITTO is None, reason="mosquitto is not installed (Debian package 'mosquitto';"
    " .ci/run installs it)")


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT))


def _campus_root(tmp_path: Path) -> Path:
    """A folder holding config.toml and deploy/campus/ as shipped (the demo writes beside)."""
    shutil.copy(ROOT / "config.toml", tmp_path / "config.toml")
    shutil.copytree(CAMPUS, tmp_path / "deploy" / "campus")
    return tmp_path


# -- processes, from /proc ----------------------------------------------------------------------
def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a live process, None when it is gone (or a zombie)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[1]), fields[19]


def _descendants(root: int) -> dict[int, str]:
    """Every live descendant of ``root``: pid -> start time (to tell a reused pid apart)."""
    parents: dict[int, list[tuple[int, str]]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None:
                parents.setdefault(st[0], []).append((int(entry), st[1]))
    out, todo = {}, [root]
    while todo:
        for pid, start in parents.get(todo.pop(), []):
            out[pid] = start
            todo.append(pid)
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _survivors(seen: dict[int, str]) -> list[str]:
    """The processes of ``seen`` still running (same pid and start time)."""
    return [f"{pid} {_cmdline(pid)}" for pid, start in seen.items()
            if (st := _stat(pid)) is not None and st[1] == start]


def _mentioning(text: str) -> list[str]:
    """Every live process whose command line mentions ``text`` (a child reparented away)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid() and _stat(int(entry)) is not None:
            line = _cmdline(int(entry))
            if text in line:
                out.append(f"{entry} {line}")
    return out


def _campus_children(pid: int) -> dict[int, str]:
    """The demo's children once mosquitto and both site processes run (empty on time-out)."""
    found: dict[int, str] = {}

    def all_up() -> bool:
        found.clear()
        found.update(_descendants(pid))
        lines = [_cmdline(p) for p in found]
        return (any("mosquitto" in ln for ln in lines)
                and sum("facility.launch_campus" in ln for ln in lines) == len(SITES))
    return found if wait_for(all_up, 90.0, step_s=0.2) else {}


# -- the configurations -------------------------------------------------------------------------
def test_the_campus_configurations_pass_check_config():
    for name in ("mec.toml", "mars.toml", "central.toml"):
        run = subprocess.run([sys.executable, "-m", "facility", "check-config", "--config",
                              str(CAMPUS / name)], capture_output=True, text=True, cwd=ROOT,
                             env=_env(), timeout=120)
        assert run.returncode == 0, (name, run.stdout, run.stderr)
        assert ": ok (" in run.stdout, (name, run.stdout)


def test_the_site_files_split_the_example_plant_by_site_and_central_mirrors_both():
    plant = load_config(str(ROOT / "config.toml"))
    central = load_config(str(CAMPUS / "central.toml"))
    assert {(s.id, s.node_id) for s in central.central.sites} == {(s, s) for s in SITES}
    devices, zones = set(), set()
    for site, name in SITES.items():
        cfg = load_config(str(CAMPUS / name))
        assert [s.id for s in cfg.sites] == [site]
        assert cfg.uplink.node_id == site and cfg.uplink.primary_host_id == central.central.host_id
        assert (cfg.uplink.group_id or cfg.facility.id) == (central.central.group_id
                                                            or central.facility.id)
        assert {d.site for d in cfg.devices} == {site} and {z.site for z in cfg.zones} == {site}
        devices |= {d.id for d in cfg.devices}
        zones |= {z.id for z in cfg.zones}
    assert devices == {d.id for d in plant.devices}
    assert zones == {z.id for z in plant.zones}


# -- the headless demo --------------------------------------------------------------------------
def _mirrored(mirror: Path) -> tuple[set[str], set[tuple[str, int, float | None]]]:
    """(devices, (point, ts, value) samples) of a mirror, through the store's read API."""
    with Store(str(mirror), readonly=True) as store:
        devices = {p["device"] for p in store.points() if p["device"]}
        samples = {(r.point, r.ts_ms, r.value) for r in store.iter_samples(0, 2**62)}
    return devices, samples


def _site_samples(db: Path) -> set[tuple[str, int, float | None]]:
    with Store(str(db), readonly=True) as store:
        return {(r.point, r.ts_ms, r.value) for r in store.iter_samples(0, 2**62)}


@needs_mosquitto
def test_headless_campus_mirrors_both_sites_and_leaves_no_child(tmp_path):
    root = _campus_root(tmp_path)
    demo = subprocess.Popen([sys.executable, "-m", "facility", "demo", "--campus", "--headless",
                             "--seconds", "6", "--config", str(root / "config.toml")],
                            cwd=str(root), env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        children = _campus_children(demo.pid)
        out, err = demo.communicate(timeout=150)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.communicate()
    assert children, f"mosquitto and both site processes never ran: {out} {err}"
    assert demo.returncode == 0, (out, err)
    for site in SITES:
        assert re.search(rf"site {site} online \(edge node hk-reind/{site}\)", out), out
    assert re.search(r"cycles mirrored: MEC \d+, MARS \d+", out), out
    assert "campus demo stopped" in err, err
    work = root / "var" / "demo-campus"
    instruments = {site: {d.id for d in load_config(str(CAMPUS / name)).devices}
                   for site, name in SITES.items()}
    for site in SITES:
        devices, mirrored = _mirrored(work / "central" / "mirror" / f"{site}.db")
        # every instrument of the site was born in its mirror, none of the other site's
        others = set().union(*(v for k, v in instruments.items() if k != site))
        assert instruments[site] <= devices and not devices & others, (site, devices)
        # the mirrored samples are the site's own, as its service committed them
        own = _site_samples(work / site / "facility.db")
        assert mirrored and mirrored <= own, (site, len(mirrored), sorted(mirrored - own)[:5])
        assert len({ts for _p, ts, _v in mirrored}) >= 2, f"{site}: fewer than two cycles"
    assert _survivors(children) == []
    assert _mentioning(str(work)) == []
    _clean_stops(work)


def _clean_stops(work: Path) -> None:
    """Each site's service stopped cleanly (its last words in the site's log)."""
    for site in SITES:
        text = (work / site / "site.log").read_text()
        assert re.search(r"service stopped after \d+ cycles", text), (site, text[-2000:])


@needs_mosquitto
def test_ctrl_c_stops_the_headless_campus_and_every_child_cleanly(tmp_path):
    root = _campus_root(tmp_path)
    demo = subprocess.Popen([sys.executable, "-m", "facility", "demo", "--campus", "--headless",
                             "--config", str(root / "config.toml")], cwd=str(root), env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(demo.stdout), daemon=True)
    reader.start()
    try:
        children = _campus_children(demo.pid)
        assert children, "mosquitto and both site processes never ran"
        online = wait_for(lambda: all(any(f"site {s} online" in ln for ln in list(lines))
                                      for s in SITES), 120.0, step_s=0.2)
        assert online, lines
        demo.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends
        err = demo.communicate(timeout=120)[1]
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.communicate()
    assert demo.returncode == 0, err
    assert "campus demo stopped" in err and "Traceback" not in err, err
    assert _survivors(children) == []
    _clean_stops(root / "var" / "demo-campus")


# -- the console in a real terminal -------------------------------------------------------------
def _both_sites(text: str) -> bool:
    """The console, not the start-up line, shows a row for each site."""
    if "starting the campus demo" in text:
        return False  # still the shell's screen, before the TUI took the terminal
    return all(re.search(rf"^\W*{site}\b", text, re.MULTILINE) for site in SITES)


@needs_mosquitto
@pytest.mark.skipif(shutil.which("tmux") is None,
                    reason="tmux is not installed (apt-get install tmux; .ci/run installs it)")
def test_campus_console_shows_both_sites_and_quits_on_q(tmp_path):
    root = _campus_root(tmp_path)
    session = f"campus-{uuid.uuid4().hex[:8]}"
    cmd = (f"cd {root} && PYTHONPATH={ROOT} {sys.executable} -m facility demo --campus"
           f" --config {root / 'config.toml'}; echo demo-exit=$?; sleep 60")
    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", cmd)
    try:
        shell = int(tmux("list-panes", "-t", session, "-F", "#{pane_pid}").split()[0])
        demo = next(iter(wait_for(lambda: [p for p in _descendants(shell)
                                           if "facility demo" in _cmdline(p)], 30.0)), None)
        assert demo is not None, screen(session)
        children = _campus_children(demo)
        assert children, screen(session)
        text = wait_screen(session, _both_sites, timeout_s=120.0)
        assert _both_sites(text), text
        tmux("send-keys", "-t", session, "q")
        text = wait_screen(session, lambda t: "demo-exit=" in t)
        assert "campus demo stopped" in text and "demo-exit=0" in text, text
        assert _survivors(children) == [], _survivors(children)
        assert _mentioning(str(root / "var" / "demo-campus")) == []
        _clean_stops(root / "var" / "demo-campus")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


# -- without a broker ---------------------------------------------------------------------------
def test_without_mosquitto_one_line_says_how_to_install_it(tmp_path, monkeypatch):
    """mosquitto is installed on the test machines, so its absence is simulated: the one
    lookup of the executable is replaced (monkeypatch) to find none."""
    from click.testing import CliRunner

    import facility.launch_campus as launch_campus
    from facility.cli import cli

    root = _campus_root(tmp_path)
    monkeypatch.setattr(launch_campus, "mosquitto_path", lambda: None)
    result = CliRunner().invoke(cli, ["demo", "--campus", "--headless", "--seconds", "1",
                                      "--config", str(root / "config.toml")])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 3, (result.exit_code, result.output)
    assert len(lines) == 1 and "apt-get install mosquitto" in lines[0], lines
    assert "Traceback" not in result.output
    assert not (root / "var").exists()  # nothing started, nothing written


def test_seconds_without_headless_is_refused_in_one_line(tmp_path):
    """The console stops on q; a timed campus demo is the headless one."""
    from click.testing import CliRunner

    from facility.cli import cli

    root = _campus_root(tmp_path)
    result = CliRunner().invoke(cli, ["demo", "--campus", "--seconds", "5",
                                      "--config", str(root / "config.toml")])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert len(lines) == 1 and "--headless" in lines[0], lines
    assert not (root / "var").exists()
