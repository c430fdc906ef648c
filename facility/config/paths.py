"""Where the campus keeps its files, decided by the configuration alone.

``facility central`` writes one mirror database per site; the command line and the TUI read
them. All three take the path from here, so the writer and the readers cannot disagree
(docs/ARCHITECTURE.md "Campus (Sparkplug B)").
"""

from __future__ import annotations

import os

from facility.config.schema import CentralSite, Config


def mirror_path(cfg: Config, site: CentralSite) -> str:
    """Where a site's mirror database lives: ``[[central.sites]] path`` (relative to the
    config file's folder), else ``mirror/<id>.db`` beside central's own database."""
    if site.path:
        return os.path.normpath(os.path.join(cfg.base_dir, site.path))
    return os.path.join(os.path.dirname(cfg.db_path), "mirror", f"{site.id}.db")
