"""The app the tabs, screens and palette of dmf-tui run in, as its own class: DmfApp, with its store
and its `db` and `write` calls, where Textual's `self.app` is typed as any App."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.app import App

if TYPE_CHECKING:
    from dmf_tui.app import DmfApp


def dmf_app(app: App[Any]) -> DmfApp:
    """`app` (a widget's or the palette's `self.app`) as the DmfApp it is.

    Textual's own way, a class attribute `app = textual.getters.app(DmfApp)`, needs DmfApp when the
    widget's class is made, and dmf_tui.app imports every widget first: DmfApp is read here when
    called instead. The check is the one getters.app makes."""
    from dmf_tui.app import DmfApp

    assert isinstance(app, DmfApp), f"dmf-tui's widgets run in DmfApp, not {type(app).__name__}"
    return app
