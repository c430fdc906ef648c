"""The facility's own floors, top to bottom (docs/ARCHITECTURE.md; pyproject.toml enforces them).

Top floor -- people and processes:

* ``cli``        the ``facility`` command line: parse, call the library, translate errors
* ``launch``     process wiring of ``facility run`` and ``facility demo``
* ``records``    what auditors take away: export, verify, archive, classify, backtest, report
  (``tui/``, a sibling package on the same floor, is what technicians look at)

Middle floor -- the running system:

* ``service``    the 24/7 cycle: pollers -> engine -> alarm book -> store -> paging, the
  operator-action socket, derived samples and the service's health
* ``catalogue``  where ``sensors``, ``alarms`` and ``hazmat`` meet: every point, rule and
  limit compiled once, with its source

Ground floor -- what everything stands on:

* ``store``      SQLite (WAL, day partitions, aggregates, retention), the audit trail, keys,
  and the read API every reader uses
* ``config``     ``config.toml`` into frozen dataclasses, every problem reported at once
* ``domain``     samples and qualities, time parsing, the one vocabulary, error categories
"""
