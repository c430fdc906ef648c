"""The overview's table: sites as headings, their zones with key readings and alarm badge."""

from __future__ import annotations

from tui.views.zones import OVERVIEW_COLUMNS
from tui.widgets.live_table import LiveTable


class ZoneTable(LiveTable):
    """Zones of every site; the cursor skips nothing, Enter on a zone opens its detail."""

    def __init__(self, **kwargs):
        super().__init__(OVERVIEW_COLUMNS, **kwargs)

    @property
    def current_zone(self) -> str | None:
        """The zone under the cursor (None on a site heading)."""
        key = self.current_key
        return None if key is None or key.startswith("site:") else key
