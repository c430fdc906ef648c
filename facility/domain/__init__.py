"""The ground under everything: plain data and words, no I/O.

* ``model``      samples, qualities, point descriptions, millisecond time helpers
* ``display``    how a value, a time and a point read for people (pages and the TUI)
* ``timeparse``  the CLI's time grammar (site-local dates, ISO 8601, half-open ranges)
* ``vocab``      the one vocabulary: zone modes, priorities and their order, roles, alarm
  kinds, the duration grammar
* ``errors``     the categories of failure (usage, check failed, runtime) the CLI maps to
  exit codes
"""
