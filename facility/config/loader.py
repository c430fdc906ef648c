"""Load and validate ``config.toml`` into the frozen dataclasses of ``config_schema``.

Every problem is collected, not just the first, each as one line
``config.toml:<key path>: <problem>; <what is allowed>`` so a facility engineer can fix
a whole file in one pass. Building is generic (driven by the dataclass fields); the
cross-checks that need the whole picture live in ``facility.config.checks``.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import functools
import hashlib
import os
import re
import tomllib
import types
import typing
from pathlib import Path

from facility.config import schema as cs
from facility.config.checks import Num, Text, rule_of
from facility.config.schema import Config
from facility.domain.errors import UsageError


class ConfigError(UsageError):
    """The configuration has problems; ``problems`` holds one line each."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


# Keys whose values would be secrets: the file must name an environment variable instead.
SECRET_WORDS = ("password", "secret", "token", "routing_key", "api_key", "apikey")

NUMBER_AS_TEXT = {(cs.Substance, "dg_class"), (cs.Substance, "subsidiary")}
"""The only keys where a TOML number stands for text: an FSD class written ``class = 2.1``.
Everywhere else a number where text belongs is an error, never silently converted."""

BOM = "\ufeff"


class _Builder:
    """Turns TOML tables into dataclasses, collecting problems instead of raising."""

    def __init__(self, source: str, text: str):
        self.source = source
        self.problems: list[str] = []
        self.fatal = False  # a value could not be built: the cross-checks are not run
        self.lines = text.splitlines()
        self.keys = key_lines(text)
        self.ruled: set[str] = set()  # keys whose own rule failed: cross-checks skip them

    def problem(self, path: str, message: str) -> None:
        path = path.lstrip(".")
        line = self._line_of(path)
        where = f"{self.source}:{line}:" if line else f"{self.source}:"
        sep = "" if message.startswith("=") else ": "
        self.problems.append(f"{where}{path}{sep}{message}")

    def _line_of(self, path: str) -> int | None:
        """The TOML line of ``path`` (tomllib gives none): the key itself, else the closest
        table or key above it that the file has."""
        return line_of(self.keys, path)

    def fail(self, path: str, message: str):
        self.fatal = True
        self.problem(path, message)
        return _BAD

    def check(self, cls, name: str, value, path: str) -> None:
        """Apply the key's rule (``facility.config.checks.FIELD_RULES``) to a built value."""
        rule = rule_of(cls, name)
        if rule is None or value is None:
            return
        if isinstance(value, dict):
            items = [(f"{path}.{k}", v) for k, v in value.items()]
        elif isinstance(value, tuple):
            items = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
        else:
            items = [(path, value)]
        for p, v in items:
            want = Num if isinstance(v, (int, float)) and not isinstance(v, bool) else Text
            if isinstance(rule, want):
                msg = rule.problem(v)
                if msg:
                    self.ruled.add(p.lstrip("."))
                    self.problem(p, msg)

    def build(self, cls, data, path: str):
        """Build dataclass ``cls`` from dict ``data``; returns None on fatal shape errors."""
        if not isinstance(data, dict):
            self.problem(path, f"must be a table, got {_tname(data)}")
            return None
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
        toml_names = {self._toml_name(name): name for name in fields}
        kwargs = {}
        for key, value in data.items():
            name = toml_names.get(key)
            if name is None:
                hint = difflib.get_close_matches(key, list(toml_names), n=1)
                sug = f"did you mean {hint[0]!r}?" if hint else f"allowed: {', '.join(toml_names)}"
                if any(w in key.lower() for w in SECRET_WORDS) and not key.endswith("_env"):
                    sug = "secrets are never stored in the file; name an environment variable"
                    sug += f" with {key}_env"
                self.problem(f"{path}.{key}", f"unknown key; {sug}")
                continue
            as_text = (cls, name) in NUMBER_AS_TEXT
            kwargs[name] = self.convert(hints[name], value, f"{path}.{key}", as_text)
            if kwargs[name] is not _BAD:
                self.check(cls, name, kwargs[name], f"{path}.{key}")
        complete = True
        for name, f in fields.items():
            missing = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if missing and name not in kwargs:
                self.problem(f"{path}.{self._toml_name(name)}", "is required")
                self.fatal = True
                complete = False
        if not complete:
            return None
        if any(v is _BAD for v in kwargs.values()):
            kwargs = {k: v for k, v in kwargs.items() if v is not _BAD}
            try:
                return cls(**kwargs)
            except TypeError:
                return None
        return cls(**kwargs)

    @staticmethod
    def _toml_name(name: str) -> str:
        return "class" if name == "dg_class" else name

    def convert(self, hint, value, path: str, as_text: bool = False):
        """Convert one TOML value to the type ``hint``; records a problem and returns _BAD.

        No silent coercion: a number is never taken for text (except ``NUMBER_AS_TEXT``), a
        boolean never for a number. One scalar where an array belongs is that one-element
        array (``nan = 65535``, ``to = "a@example.org"``), as docs/ARCHITECTURE.md writes it.
        """
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if origin in (typing.Union, types.UnionType):
            inner = [a for a in args if a is not type(None)]
            return self.convert(inner[0], value, path, as_text)
        if dataclasses.is_dataclass(hint):
            built = self.build(hint, value, path)
            if built is None:
                self.fatal = True
            return _BAD if built is None else built
        if origin is tuple:
            if not isinstance(value, (list, dict)) and args[0] in (str, int, float):
                value = [value]
            if not isinstance(value, list):
                return self.fail(path, f"must be an array, got {_tname(value)}")
            items = [self.convert(args[0], v, f"{path}[{i}]", as_text) for i, v in enumerate(value)]
            return _BAD if any(i is _BAD for i in items) else tuple(items)
        if origin is dict:
            if not isinstance(value, dict):
                return self.fail(path, f"must be a table, got {_tname(value)}")
            out = {str(k): self.convert(args[1], v, f"{path}.{k}") for k, v in value.items()}
            return _BAD if any(v is _BAD for v in out.values()) else out
        if hint is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return self.fail(path, f"must be a number, got {_tname(value)} {value!r}")
            return float(value)
        if hint is int:
            if isinstance(value, bool) or not isinstance(value, int):
                return self.fail(path, f"must be an integer, got {_tname(value)} {value!r}")
            return value
        if hint is bool:
            if not isinstance(value, bool):
                return self.fail(path, f"must be true or false, got {_tname(value)} {value!r}")
            return value
        if hint is str:
            if not isinstance(value, str):
                if as_text and isinstance(value, (int, float)) and not isinstance(value, bool):
                    return _num_text(value)  # an FSD class "2.1" written as 2.1
                return self.fail(path, f"must be a string, got {_tname(value)} {value!r};"
                                       " put it in quotes if it is text")
            return value
        if hint is datetime.date:
            if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
                return value  # an unquoted TOML local date
            try:
                return datetime.date.fromisoformat(value) if isinstance(value, str) and \
                    re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) else self.fail(
                        path, f"must be a date \"YYYY-MM-DD\", got {_tname(value)} {value!r}")
            except ValueError:
                return self.fail(path, f"must be a real date \"YYYY-MM-DD\", got {value!r}")
        raise TypeError(f"config schema type {hint!r} is not supported")  # a bug, not user input


_BAD = object()


def _num_text(value: int | float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


# ---------------------------------------------------------------- where a key is written
_BARE_OR_QUOTED = re.compile(r"""[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*'""")
_KEY_AT = re.compile(r"""\s*((?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
                     r"""(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*'))*)\s*=""")


def _key_parts(text: str) -> list[str]:
    return [p[1:-1] if p[:1] in "\"'" else p for p in _BARE_OR_QUOTED.findall(text)]


def key_lines(text: str) -> dict[str, int]:
    """``key path -> line`` for every table, array element and key of a TOML text, in the
    loader's path spelling (``devices[3].points[0].limits.action_low.on_delay_s``).

    A small scanner of valid TOML (tomllib has parsed it already): headers, dotted keys,
    inline tables, arrays and multi-line strings. Best effort: it never raises.
    """
    out: dict[str, int] = {}
    arrays: dict[str, int] = {}
    n, i, line, table = len(text), 0, 1, ""

    def resolve(parts: list[str]) -> str:
        cur = ""
        for part in parts:
            cur = f"{cur}.{part}" if cur else part
            if cur in arrays:
                cur = f"{cur}[{arrays[cur]}]"
        return cur

    def skip(stop_at_newline: bool) -> None:
        nonlocal i, line
        while i < n:
            c = text[i]
            if c == "\n":
                if stop_at_newline:
                    return
                line += 1
            elif c == "#":
                while i < n and text[i] != "\n":
                    i += 1
                continue
            elif c not in " \t\r":
                return
            i += 1

    def value(path: str) -> None:
        nonlocal i, line
        if text.startswith(('"""', "'''"), i):
            end = text.find(text[i:i + 3], i + 3)
            end = n if end < 0 else end + 3
            while end < n and text[end] == text[i]:
                end += 1
            line += text.count("\n", i, end)
            i = end
        elif i < n and text[i] in "\"'":
            q, i = text[i], i + 1
            while i < n and text[i] != q and text[i] != "\n":
                i += 2 if q == '"' and text[i] == "\\" else 1
            i += 1
        elif i < n and text[i] == "[":
            i, k = i + 1, 0
            while i < n:
                skip(False)
                if i >= n or text[i] == "]":
                    i += 1
                    return
                out.setdefault(f"{path}[{k}]", line)
                value(f"{path}[{k}]")
                k += 1
                skip(False)
                if i < n and text[i] == ",":
                    i += 1
        elif i < n and text[i] == "{":
            i += 1
            while i < n:
                skip(False)
                if i >= n or text[i] == "}":
                    i += 1
                    return
                m = _KEY_AT.match(text, i)
                if not m:
                    return
                sub = ".".join([path, *_key_parts(m.group(1))])
                out.setdefault(sub, line)
                i = m.end()
                skip(False)
                value(sub)
                skip(False)
                if i < n and text[i] == ",":
                    i += 1
        else:
            while i < n and text[i] not in ",]}\n#":
                i += 1

    try:
        while i < n:
            skip(False)
            if i >= n:
                break
            if text[i] == "[":
                end = text.find("\n", i)
                end = n if end < 0 else end
                head = text[i:end].split("#", 1)[0].strip() if '"' not in text[i:end] else \
                    text[i:end].strip()
                double = head.startswith("[[")
                parts = _key_parts(head.strip("[]"))
                if double:
                    parent = resolve(parts[:-1])
                    arr = f"{parent}.{parts[-1]}" if parent else parts[-1]
                    arrays[arr] = arrays.get(arr, -1) + 1
                    table = f"{arr}[{arrays[arr]}]"
                    out.setdefault(arr, line)
                else:
                    table = resolve(parts)
                out.setdefault(table, line)
                i = end
                continue
            m = _KEY_AT.match(text, i)
            if not m:
                while i < n and text[i] != "\n":
                    i += 1
                continue
            path = ".".join([p for p in [table] if p] + _key_parts(m.group(1)))
            out.setdefault(path, line)
            i = m.end()
            skip(True)
            value(path)
    except (IndexError, ValueError):  # never: the text is valid TOML; a line is only a help
        pass
    return out


@functools.lru_cache(maxsize=4)
def _cached_key_lines(text: str) -> dict[str, int]:
    return key_lines(text)


def line_of(keys: dict[str, int], path: str) -> int | None:
    """The line of ``path``, else of the nearest enclosing key or table the text has."""
    path = path.lstrip(".")
    while path:
        if path in keys:
            return keys[path]
        cut = max(path.rfind("."), path.rfind("["))
        if cut <= 0:
            return None
        path = path[:cut]
    return None


def place(cfg: Config, problem: str) -> str:
    """``<file>:<line>:<key path>: ...`` for a problem ``"<key path>: ..."`` found by a floor
    above (profiles, the catalogue), so every check-config line names its line too."""
    m = re.match(r"^([A-Za-z0-9_][\w.\[\]-]*?)(?=[:=]| )", problem)
    keys = _cached_key_lines(cfg.text)
    line = line_of(keys, m.group(1)) if m else None
    if line is None and m:  # a point id "<device>.<point>": the device's table
        dev = next((i for i, d in enumerate(cfg.devices) if d.id == m.group(1).split(".")[0]),
                   None)
        line = keys.get(f"devices[{dev}]") if dev is not None else None
    return f"{cfg.source}:{line}:{problem}" if line else f"{cfg.source}:{problem}"


def _tname(value) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


def parse_config(text: str, source: str = "config.toml", base_dir: str = ".") -> Config:
    """Validate TOML text; raises ConfigError listing every problem."""
    if text.startswith(BOM):
        raise ConfigError([f"{source}:1: starts with a UTF-8 byte-order mark (BOM); save the"
                           " file as UTF-8 without BOM"])
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        line = f"{m.group(1)}:" if m else ""
        raise ConfigError([f"{source}:{line} invalid TOML: {exc}"]) from None
    b = _Builder(source, text)
    cfg = b.build(Config, data, "")
    if cfg is not None and not b.fatal:
        cfg = dataclasses.replace(
            cfg, source=source, text=text, base_dir=base_dir,
            sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        )
        from facility.config.checks import cross_check

        for path, message in cross_check(cfg):
            if path not in b.ruled:  # a key out of its range is named once, not again in a sum
                b.problem(path, message)
    if b.problems:
        raise ConfigError([p.replace(":.", ":", 1) for p in b.problems])
    return cfg


def load_config(path: str | os.PathLike = "config.toml") -> Config:
    """Read and validate a config file; ConfigError (one line per problem) when invalid."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"{p}: file not found; pass --config FILE or create config.toml"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{p}: is a folder; pass --config FILE"]) from None
    except OSError as exc:
        raise ConfigError([f"{p}: cannot read: {exc.strerror or exc}"]) from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError([f"{p}:1: is UTF-16 (it starts with a UTF-16 byte-order mark);"
                           " save the file as UTF-8 without BOM"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError([f"{p}:{line}: is not UTF-8 (byte 0x{raw[exc.start]:02x}); save the"
                           " file as UTF-8"]) from None
    return parse_config(text, source=p.name if p.parent == Path(".") else str(p),
                        base_dir=str(p.resolve().parent))


def fields_doc(cls=cs.Config) -> list[str]:
    """Names of a section's keys, for the README tour and "did you mean" hints."""
    return [f.name for f in dataclasses.fields(cls) if not f.metadata.get("internal")]
