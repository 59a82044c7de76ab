"""`dmf-tui data list`, `dmf-tui data fetch NAME` and `dmf-tui data clear-cache`: what datasets exist,
which are here, downloading one, and removing the parsed copies of big ratings files (engine/cache.py).
The engine is imported inside the commands (it stays out of the TUI's start). Paths and messages are
printed as they are, never as Rich markup (see commands/output.py)."""

from __future__ import annotations

import argparse
import warnings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("data", help="list and download datasets")
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    list_parser = actions.add_parser("list", help="the known datasets and which are downloaded")
    list_parser.add_argument("--data-dir", help="dataset folder (default: $DMF_DATA_DIR or data/)")
    list_parser.set_defaults(func=list_datasets)

    fetch_parser = actions.add_parser("fetch", help="download, verify and extract a MovieLens dataset")
    fetch_parser.add_argument("name", help="e.g. ml-1m (see `dmf-tui data list`)")
    fetch_parser.add_argument("--url", help="download from this address instead of GroupLens (still verified)")
    fetch_parser.add_argument("--force", action="store_true", help="download again even if present")
    fetch_parser.add_argument("--data-dir", help="dataset folder (default: $DMF_DATA_DIR or data/)")
    fetch_parser.set_defaults(func=fetch_dataset)

    clear_parser = actions.add_parser("clear-cache", help="remove the parsed copies of big ratings files")
    clear_parser.set_defaults(func=clear_cache)


def list_datasets(args: argparse.Namespace) -> int:
    from rich.table import Table
    from rich.text import Text

    from dmf_tui.commands.output import Console
    from engine import datasets, synthetic

    root = datasets.data_dir() if args.data_dir is None else args.data_dir
    table = Table(title=f"Datasets in {root}")
    table.add_column("name")
    table.add_column("ratings", justify="right")
    table.add_column("here")
    table.add_column("path", overflow="fold")
    table.add_column("checksum")
    for info in datasets.DATASETS.values():
        path = datasets.dataset_path(info.name, root)
        here = Text("yes", "green") if path.exists() else "no"
        checksum = ", ".join(info.checksums) or Text("none known", "yellow")
        table.add_row(info.name, f"{info.ratings:,}", here, str(path), checksum)
    for name, shape in synthetic.SHAPES.items():
        table.add_row(name, f"{shape.n_ratings:,}", "generated", "(in memory)", "-")
    Console().print(table)
    return 0


def fetch_dataset(args: argparse.Namespace) -> int:
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn
    from rich.text import Text

    from dmf_tui.commands.output import Console
    from engine import datasets

    console = Console(stderr=True)
    path = datasets.dataset_path(args.name, args.data_dir)
    if path.exists() and not args.force:
        console.print(f"{args.name} is already in {path} (use --force to download it again)")
        return 0
    with Progress(*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(), console=console) as bar:
        task = bar.add_task(f"{args.name}.zip", total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", datasets.UncheckedDownloadWarning)
            path = datasets.fetch(args.name, data_dir=args.data_dir, url=args.url, progress=progress, force=True)
    for warning in caught:
        console.print(Text.assemble(("warning:", "yellow"), f" {warning.message}"))
    checksums = ", ".join(datasets.DATASETS[args.name].checksums)
    console.print(f"{args.name}: {path} ({checksums + ' verified' if checksums else 'not verified'})")
    return 0


def clear_cache(args: argparse.Namespace) -> int:
    from dmf_tui.commands.output import Console
    from engine import cache

    count, size = cache.clear()
    Console().print(f"removed {count} cached dataset{'s' if count != 1 else ''} ({size / 1e6:.1f} MB) "
                    f"from {cache.cache_dir()}")
    return 0
