"""Load and validate ``config.toml`` into the frozen dataclasses of ``config_schema``.

Every problem is collected, not just the first, each as one line
``config.toml:<key path>: <problem>; <what is allowed>`` so a facility engineer can fix
a whole file in one pass. Building is generic (driven by the dataclass fields); the
cross-checks that need the whole picture live in ``facility.config.checks``.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import os
import re
import tomllib
import types
import typing
from pathlib import Path

from facility.config import schema as cs
from facility.config.schema import Config
from facility.domain.errors import UsageError


class ConfigError(UsageError):
    """The configuration has problems; ``problems`` holds one line each."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


# Keys whose values would be secrets: the file must name an environment variable instead.
SECRET_WORDS = ("password", "secret", "token", "routing_key", "api_key", "apikey")


class _Builder:
    """Turns TOML tables into dataclasses, collecting problems instead of raising."""

    def __init__(self, source: str, text: str):
        self.source = source
        self.problems: list[str] = []
        self.lines = text.splitlines()

    def problem(self, path: str, message: str) -> None:
        line = self._line_of(path)
        where = f"{self.source}:{line}:" if line else f"{self.source}:"
        sep = "" if message.startswith("=") else ": "
        self.problems.append(f"{where}{path}{sep}{message}")

    def _line_of(self, path: str) -> int | None:
        """Best-effort TOML line of the last key in ``path`` (tomllib gives none)."""
        key = re.split(r"[.\[]", path.rstrip("]"))[-1]
        if not key or key.isdigit():
            return None
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        hits = [i + 1 for i, ln in enumerate(self.lines) if pattern.match(ln)]
        return hits[0] if len(hits) == 1 else None

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
            kwargs[name] = self.convert(hints[name], value, f"{path}.{key}")
        complete = True
        for name, f in fields.items():
            missing = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if missing and name not in kwargs:
                self.problem(f"{path}.{self._toml_name(name)}", "is required")
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

    def convert(self, hint, value, path: str):
        """Convert one TOML value to the type ``hint``; records a problem and returns _BAD."""
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if origin in (typing.Union, types.UnionType):
            inner = [a for a in args if a is not type(None)]
            return self.convert(inner[0], value, path)
        if dataclasses.is_dataclass(hint):
            built = self.build(hint, value, path)
            return _BAD if built is None else built
        if origin is tuple:
            if isinstance(value, str) and args[0] is str:
                value = [value]
            if not isinstance(value, list):
                self.problem(path, f"must be an array, got {_tname(value)}")
                return _BAD
            items = [self.convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
            return _BAD if any(i is _BAD for i in items) else tuple(items)
        if origin is dict:
            if not isinstance(value, dict):
                self.problem(path, f"must be a table, got {_tname(value)}")
                return _BAD
            out = {str(k): self.convert(args[1], v, f"{path}.{k}") for k, v in value.items()}
            return _BAD if any(v is _BAD for v in out.values()) else out
        if hint is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.problem(path, f"must be a number, got {_tname(value)} {value!r}")
                return _BAD
            return float(value)
        if hint is int:
            if isinstance(value, bool) or not isinstance(value, int):
                self.problem(path, f"must be an integer, got {_tname(value)} {value!r}")
                return _BAD
            return value
        if hint is bool:
            if not isinstance(value, bool):
                self.problem(path, f"must be true or false, got {_tname(value)} {value!r}")
                return _BAD
            return value
        if hint is str:
            if not isinstance(value, str):
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    return str(value)  # e.g. gmp class "2.1" written as 2.1
                self.problem(path, f"must be a string, got {_tname(value)} {value!r}")
                return _BAD
            return value
        raise TypeError(f"config schema type {hint!r} is not supported")  # a bug, not user input


_BAD = object()


def _tname(value) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


def parse_config(text: str, source: str = "config.toml", base_dir: str = ".") -> Config:
    """Validate TOML text; raises ConfigError listing every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        line = f"{m.group(1)}:" if m else ""
        raise ConfigError([f"{source}:{line} invalid TOML: {exc}"]) from None
    b = _Builder(source, text)
    cfg = b.build(Config, data, "")
    if cfg is not None and not b.problems:
        cfg = dataclasses.replace(
            cfg, source=source, text=text, base_dir=base_dir,
            sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        )
        from facility.config.checks import cross_check

        for path, message in cross_check(cfg):
            b.problem(path, message)
    if b.problems:
        raise ConfigError([p.replace(":.", ":", 1) for p in b.problems])
    return cfg


def load_config(path: str | os.PathLike = "config.toml") -> Config:
    """Read and validate a config file; ConfigError (one line per problem) when invalid."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{p}: file not found; pass --config FILE or create config.toml"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{p}: cannot read: {exc}"]) from None
    return parse_config(text, source=p.name if p.parent == Path(".") else str(p),
                        base_dir=str(p.resolve().parent))


def fields_doc(cls=cs.Config) -> list[str]:
    """Names of a section's keys, for the README tour and "did you mean" hints."""
    return [f.name for f in dataclasses.fields(cls) if not f.metadata.get("internal")]
