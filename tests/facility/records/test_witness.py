"""The chain witness file: signed, chained checkpoints of the audit head, and the heartbeat
that carries the head off site."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from alarms.paging_channels import heartbeat_url, send_heartbeat
from facility.config.schema import PagingCfg
from facility.domain.errors import CheckFailed
from facility.records.witness import WitnessError, latest, read_checkpoints
from facility.store.keys import _write_private, load_signing_key, public_raw
from facility.store.witness import append_checkpoint, signed_bytes


@pytest.fixture()
def witness(tmp_path):
    key_path = str(tmp_path / "signing.key")
    _write_private(key_path, ed25519.Ed25519PrivateKey.generate())
    key = load_signing_key(key_path)
    path = str(tmp_path / "chain.witness")
    for row in range(1, 5):
        append_checkpoint(path, key, row, f"{row:064x}", at_ms=1_700_000_000_000 + row)
    return path, key


def _lines(path):
    with open(path) as fh:
        return fh.read().splitlines()


def _write(path, lines):
    with open(path, "w") as fh:
        fh.write("".join(line + "\n" for line in lines))


def test_checkpoints_chain_and_sign(witness):
    path, key = witness
    got = read_checkpoints(path)
    assert [c["seq"] for c in got] == [1, 2, 3, 4] and got[-1]["row_id"] == 4
    assert latest(path)["hash"] == f"{4:064x}" and got[0]["at"] == "2023-11-14T22:13:20.001Z"
    assert all(c["key"] == public_raw(key).hex() for c in got)
    assert append_checkpoint(path, key, 4, f"{4:064x}") is None  # the head has not moved
    assert len(_lines(path)) == 4
    assert stat.S_IMODE(os.stat(os.path.join(os.path.dirname(path), "signing.key")).st_mode) \
        == 0o600
    assert issubclass(WitnessError, CheckFailed)


def test_edited_line_is_caught(witness):
    path, _key = witness
    lines = _lines(path)
    line = json.loads(lines[1])
    line["row_id"] = 1  # "the chain was shorter": signature no longer matches
    lines[1] = json.dumps(line, separators=(",", ":"))
    _write(path, lines)
    with pytest.raises(WitnessError, match="line 2: signature does not match"):
        read_checkpoints(path)


def test_removed_line_is_caught(witness):
    path, _key = witness
    lines = _lines(path)
    _write(path, lines[:1] + lines[2:])
    with pytest.raises(WitnessError, match="line 2: seq 3"):
        read_checkpoints(path)


def test_truncated_tail_rewritten_with_another_key_is_caught(witness):
    path, _key = witness
    lines = _lines(path)
    _write(path, lines[:2])
    forger = ed25519.Ed25519PrivateKey.generate()
    append_checkpoint(path, forger, 3, "f" * 64)  # re-chained and signed, by the wrong key
    with pytest.raises(WitnessError, match="line 3: signed by a key that is not the site's"):
        read_checkpoints(path)
    last = json.loads(_lines(path)[-1])
    assert forger.public_key().public_bytes_raw().hex() == last["key"]
    assert len(signed_bytes(last)) > 0


def test_heartbeat_carries_the_head(witness, tmp_path):
    path, _key = witness
    head = latest(path)
    url = heartbeat_url("http://127.0.0.1:9/ping?site=x", head)
    assert url.startswith("http://127.0.0.1:9/ping?site=x&chain_seq=4&chain_row_id=4&chain_hash=")
    assert f"chain_sig={head['sig']}" in url
    out = tmp_path / "env.json"
    script = ("import json, os, sys; json.dump({k: v for k, v in os.environ.items() "
              "if k.startswith('FACILITY_CHAIN_')}, open(sys.argv[1], 'w'))")
    paging = dataclasses.replace(PagingCfg(), heartbeat_command=(sys.executable, "-c", script,
                                                                 str(out)))
    res = send_heartbeat(paging, head=head)
    assert res.ok, res.error
    env = json.loads(out.read_text())
    assert env["FACILITY_CHAIN_ROW_ID"] == "4" and env["FACILITY_CHAIN_HASH"] == head["hash"]
    assert env["FACILITY_CHAIN_SIG"] == head["sig"]
