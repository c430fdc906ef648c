"""Pure view models: what each screen shows, computed from a snapshot and the config.

No Textual here, so the rules (which reading is the zone's key reading, how it is
coloured, what the banner says) are testable without a terminal. Cells are Rich ``Text``.
One module per concern: ``common`` (what several screens share), ``banner``, ``zones``
(the overview), ``alarms``, ``devices`` and ``hazmat``.
"""
