"""Opening the TUI: `dmf-tui` with no command, and `dmf-tui demo`, which opens it on a demo
database with MF and DeepMF queued on the offline synthetic-100k dataset."""

from __future__ import annotations

import argparse

from store.db import app_data_dir, open_store
from store.params import RunParams


def open_tui(args: argparse.Namespace) -> int:
    """Open the TUI on --db (else $DMF_DB, else the default database). A database that cannot be
    opened raises StoreError before the screen changes, which cli.main prints as one line."""
    return _run_app(args.db)


def demo_db() -> str:
    """demo.db beside the default database in the user's data directory. $DMF_DB does not move it:
    it names the user's real database, which the demo must never queue its runs into."""
    return str(app_data_dir() / "demo.db")


def demo(args: argparse.Namespace) -> int:
    db = args.db or demo_db()
    store = open_store(db)
    try:
        if not store.queue():
            # A larger lr than the lab's 1e-3: ML-100K-sized data has a tenth of ML-1M's steps per
            # epoch, and at 1e-3 MF is still far from converged after 30 epochs.
            demo_runs = [RunParams(model=model, data="synthetic-100k", lr=5e-3, epochs=30)
                         for model in ("mf", "deepmf")]
            store.enqueue_grid(demo_runs, name="demo")
    finally:
        store.close()
    return _run_app(db)


def _run_app(db: str | None) -> int:
    # Imported here so that the other commands do not pay for loading Textual.
    from dmf_tui.app import DmfApp

    store = open_store(db)
    try:
        DmfApp(store).run()
    finally:
        store.close()
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "demo",
        help="open the TUI on a demo database with MF and DeepMF queued on synthetic-100k (offline)",
        description="Open the TUI on a demo database (--db, else demo.db in the user data directory; "
        "$DMF_DB is not used). When its queue is empty, MF and DeepMF on synthetic-100k are queued first; "
        "press w in the TUI to start a worker.",
    )
    parser.set_defaults(func=demo)
