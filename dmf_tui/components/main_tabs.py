"""The Queue / Live / History / Searches tabs of the main screen."""

from __future__ import annotations

from textual.widgets import TabbedContent, Tabs


class MainTabs(TabbedContent):
    """A TabbedContent on which a tab chosen by a key at startup stays chosen.

    The tab bar activates its first tab from its own mount, and that message can arrive after
    a key typed ahead (while the app was starting) already showed another tab; TabbedContent
    would then switch back to the first tab. A tab bar's message about a tab that is no
    longer its active one is stale, so it is dropped."""

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        if event.tab.id != event.tabs.active:
            event.prevent_default()
            event.stop()
