"""A scaled copy of the shipped config.toml with about N points.

    python benchmarks/scale_config.py N [--config config.toml] [--out PATH]

The plant is copied whole: every zone and device of the shipped configuration (read when this
runs, so it follows whatever config.toml holds) is repeated k times with ids suffixed
``-Xk``, zone references remapped inside each copy and each copy's devices on their own block of
loopback ports, so the copy passes ``facility check-config`` and ``facility simulate`` plays it.
Sites, hazmat, operators and paging stay as shipped (they refer to the first copy). k is chosen
so that the catalogue's point count is closest to N. Prints the path and the point count.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else _str(k)


def _str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _val(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return _str(v)
    if isinstance(v, list):
        return "[" + ", ".join(_val(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_val(x)}" for k, x in v.items()) + "}"
    if hasattr(v, "isoformat"):
        return v.isoformat()
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _is_table_array(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def dump(doc: dict) -> str:
    """TOML text for ``doc`` (tables and arrays of tables; enough for config.toml)."""
    out: list[str] = []

    def table(d: dict, path: list[str], header: str | None) -> None:
        if header is not None:
            out.append("")
            out.append(header)
        for k, v in d.items():
            if not isinstance(v, dict) and not _is_table_array(v):
                out.append(f"{_key(k)} = {_val(v)}")
        for k, v in d.items():
            sub = path + [_key(k)]
            if isinstance(v, dict):
                table(v, sub, f"[{'.'.join(sub)}]")
            elif _is_table_array(v):
                for item in v:
                    table(item, sub, f"[[{'.'.join(sub)}]]")

    table(doc, [], None)
    return "\n".join(out).lstrip("\n") + "\n"


def _rezone(v, zone_ids: set[str], sfx: str):
    """``v`` with every zone id (alone, or in a ``"A - B"`` difference) suffixed."""
    if isinstance(v, dict):
        return {k: _rezone(x, zone_ids, sfx) for k, x in v.items()}
    if isinstance(v, list):
        return [_rezone(x, zone_ids, sfx) for x in v]
    if isinstance(v, str):
        parts = v.split(" - ")
        if any(p in zone_ids for p in parts):
            return " - ".join(p + sfx if p in zone_ids else p for p in parts)
    return v


def scaled(doc: dict, copies: int) -> dict:
    """``doc`` with its zones and devices repeated ``copies`` times (the first copy as is)."""
    zones, devices = doc.get("zones", []), doc.get("devices", [])
    ports = [d["port"] for d in devices if "port" in d]
    span = (max(ports) - min(ports) + 1) if ports else 0
    zone_ids = {z["id"] for z in zones}
    new = dict(doc)
    new["zones"], new["devices"] = list(zones), list(devices)
    for k in range(1, copies):
        sfx = f"-X{k}"
        for z in zones:
            c = dict(z, id=z["id"] + sfx)
            if c.get("reference") in zone_ids:
                c["reference"] = c["reference"] + sfx
            new["zones"].append(c)
        for d in devices:
            c = _rezone(d, zone_ids, sfx)
            c["id"] = d["id"] + sfx
            if "port" in c:
                c["port"] = c["port"] + k * span
            new["devices"].append(c)
    return new


def point_count(cfg_path: Path) -> int:
    from facility.catalogue import build_catalogue
    from facility.config.loader import load_config

    return len(build_catalogue(load_config(str(cfg_path))).points)


def write_scaled(n: int, out: Path, config: Path = ROOT / "config.toml") -> tuple[Path, int]:
    """Write a copy of ``config`` scaled to about ``n`` points at ``out``; (path, points)."""
    doc = tomllib.loads(config.read_text())
    storage = dict(doc.get("storage", {}))
    # the copy's database beside the copy, whatever the shipped relative path
    storage["path"] = os.path.join("var", out.stem + ".db")
    doc["storage"] = storage
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(dump(doc))
    base = point_count(out)
    copies = max(1, round(n / base)) if base else 1
    if copies > 1:
        out.write_text(dump(scaled(doc, copies)))
    return out, (base * copies if copies == 1 else point_count(out))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("points", type=int, help="about how many points")
    ap.add_argument("--config", type=Path, default=ROOT / "config.toml")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    out = a.out or ROOT / "var" / "bench" / f"scaled-{a.points}.toml"
    path, n = write_scaled(a.points, out, a.config)
    print(f"{path} {n} points ({math.ceil(n / max(1, a.points) * 100)} % of {a.points})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
