"""What an auditor takes away, all read through the store's read API.

* ``export``    samples, alarms and the audit trail for a period, with a manifest
* ``verify``    re-check an export offline (hashes, row counts, chain links)
* ``archive``   whole past day partitions as verified archives (before retention purges)
* ``classify``  an ISO 14644-1 classification statement from monitoring data
* ``backtest``  the live engine's limits over recorded samples
* ``report``    the HTML report: ``stats`` (compliance numbers), ``charts``, ``html``
"""
