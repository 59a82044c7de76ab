"""`dmf-tui show` says which runs a run trained with as one pack (store.claim_pack), and says nothing
of packs for a run that trained alone."""

from __future__ import annotations

import json

import pytest

from dmf_tui.cli import main
from store.db import Store, open_store
from store.params import RunParams

# Three runs that differ only in lr pack together; dropout makes the fourth train alone.
BASE = RunParams(data="synthetic-100k", epochs=2, device="cpu")


def claim_pack_of_three_and_one_alone(store: Store) -> tuple[list[int], int]:
    for lr in (1e-3, 1e-2, 1e-1):
        store.enqueue(BASE.replace(lr=lr))
    store.enqueue(BASE.replace(model="deepmf", dropout=0.1))
    pack = [run.id for run in store.claim_pack(None, device="cpu", limit=3)]
    alone = store.claim(None, device="cpu")
    assert len(pack) == 3 and alone is not None
    return pack, alone.id


def show(db: str, run_id: int, capsys: pytest.CaptureFixture[str], *flags: str) -> str:
    assert main(["--db", db, "show", str(run_id), *flags]) == 0
    return capsys.readouterr().out


def pack_lines(out: str) -> list[str]:
    return [" ".join(line.split()) for line in out.splitlines() if line.split()[:1] == ["pack"]]


def test_show_names_the_pack_and_how_many_others_trained_in_it(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = open_store(db)
    pack, alone = claim_pack_of_three_and_one_alone(store)
    capsys.readouterr()
    assert pack_lines(show(db, pack[1], capsys)) == [f"pack training with 2 other runs in pack #{pack[0]} (3 runs)"]
    store.finish_run(pack[1], "done")
    assert pack_lines(show(db, pack[1], capsys)) == [f"pack trained with 2 other runs in pack #{pack[0]} (3 runs)"]
    assert pack_lines(show(db, alone, capsys)) == []


def test_show_json_has_the_pack_id_and_size(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    pack, alone = claim_pack_of_three_and_one_alone(open_store(db))
    capsys.readouterr()
    packed = json.loads(show(db, pack[2], capsys, "--json"))["run"]
    assert (packed["pack_id"], packed["pack_size"]) == (pack[0], 3)
    single = json.loads(show(db, alone, capsys, "--json"))["run"]
    assert (single["pack_id"], single["pack_size"]) == (None, None)
