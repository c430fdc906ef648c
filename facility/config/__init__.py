"""The configuration floor: ``config.toml`` into frozen dataclasses, every problem at once.

* ``schema``  the dataclasses, one field per key, each with its docstring and default
* ``loader``  TOML -> dataclasses, unknown keys with "did you mean", secrets refused
* ``checks``  the cross-checks that need the whole file (references, ranges, timeouts)
"""

from facility.config.loader import ConfigError, load_config, parse_config

__all__ = ["ConfigError", "load_config", "parse_config"]
