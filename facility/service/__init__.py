"""The running service (``facility run``): one process per database, 24/7.

* ``service``           the cycle: poll -> derive -> engine -> alarm book -> one transaction
* ``alarm_book``        every alarm's ISA-18.2 state, its pending events and audit rows
* ``operator_actions``  acknowledge, shelve, suppress, comment, modes, with role checks
* ``derive``            derived samples: pressure cascades, gas exposure, hazmat stock
* ``health``            the service watching itself: loop lag, skipped runs, disk, clock, lock
* ``socket``            the Unix socket operators' commands arrive on (peer credentials)

This ``__init__`` imports nothing, so a reader that only needs the socket client (the TUI,
the CLI) does not load numba.
"""
