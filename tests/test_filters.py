"""The filter language (store/filters.py): what each term reads as, and one clear error for each
malformed one. How the store applies a filter is tested in test_store_queries.py."""

from __future__ import annotations

import pytest

from store.filters import FilterError, RunFilter, Term, parse_filter, parse_term
from store.status import STATUSES


def terms(text: str) -> list[tuple[str, str, tuple[object, ...]]]:
    return [(t.name, t.op, t.values) for t in parse_filter(text).terms]


def test_an_empty_filter_asks_for_nothing() -> None:
    assert parse_filter("") == parse_filter("   ") == RunFilter()


@pytest.mark.parametrize(("text", "expected"), [
    ("lr:<1e-2", [("lr", "<", (0.01,))]),
    ("k:>=32", [("k", ">=", (32,))]),
    ("k:<=8 k:>2", [("k", "<=", (8,)), ("k", ">", (2,))]),
    ("seed:!=0", [("seed", "!=", (0,))]),
    ("lr:=0.001", [("lr", "=", (0.001,))]),
    ("lr:1e-3,1e-2", [("lr", "=", (0.001, 0.01))]),  # parsed by float: 1e-3 is 0.001
    ("model:mf,deepmf", [("model", "=", ("mf", "deepmf"))]),
    ("model:DeepMF", [("model", "=", ("deepmf",))]),  # the model's own parser lowercases
    ("hidden:10,5", [("hidden", "=", ("10,5",))]),  # one value: hidden layers separate alternatives with /
    ("hidden:10x5/64,32", [("hidden", "=", ("10,5", "64,32"))]),
    ("bias:yes", [("bias", "=", (True,))]),
    ("epochs:>=50", [("epochs", ">=", (50,))]),  # a parameter without a column of its own
])
def test_parameters_compare_with_their_own_parser(text: str, expected: list[object]) -> None:
    assert terms(text) == expected


def test_parameters_go_by_their_column_heading_any_case_and_without_a_colon() -> None:
    assert terms("wd:<1e-4 batch:512 K:16") == [
        ("weight_decay", "<", (1e-4,)), ("batch_size", "=", (512,)), ("k", "=", (16,))]
    assert terms("weight-decay:0") == [("weight_decay", "=", (0.0,))]
    assert terms("lr<1e-2 k>=32 model=mf") == [("lr", "<", (0.01,)), ("k", ">=", (32,)), ("model", "=", ("mf",))]
    # An unknown name without a colon is just text.
    assert parse_filter("x<3").words == ("x<3",)


def test_statuses_sweeps_datasets_and_archived() -> None:
    assert terms("status:failed,LOST") == [("status", "=", ("failed", "lost"))]
    assert terms("status:!=done") == [("status", "!=", ("done",))]
    assert terms("status:all") == [("status", "=", STATUSES)]
    assert terms("sweep:3 sweep:lr-grid") == [("sweep", "=", ("3",)), ("sweep", "=", ("lr-grid",))]
    assert terms('sweep:"k sweep, again"') == [("sweep", "=", ("k sweep, again",))]
    assert terms("data:ml-100k,ml-1m") == [("data", "=", ("ml-100k", "ml-1m"))]
    assert terms("dataset:/data/u.data") == [("data", "=", ("/data/u.data",))]
    assert parse_filter("data:all") == RunFilter(all_data=True)
    assert terms("archived:yes archived:No archived:all") == [
        ("archived", "=", (True,)), ("archived", "=", (False,)), ("archived", "=", (True, False))]


def test_run_ids_and_bare_numbers() -> None:
    assert terms("id:12 #13 id:>100 id:4,5") == [
        ("id", "=", (12,)), ("id", "=", (13,)), ("id", ">", (100,)), ("id", "=", (4, 5))]
    # A bare number is a run id or text (a note saying "100 epochs"): the store matches either.
    assert parse_filter("12 007").numbers == (12, 7)
    assert parse_filter("#abc").words == ("#abc",)


def test_other_words_are_text_each_of_which_must_match() -> None:
    found = parse_filter('oom "out of memory" 12:30 50%_done ü')
    assert found.words == ("oom", "out of memory", "12:30", "50%_done", "ü")
    assert found.terms == ()
    # A quoted word is text even with a colon in it.
    assert parse_filter('"lr:<1e-2"').words == ("lr:<1e-2",)


def test_unicode_digits_are_text_not_ids() -> None:
    # str.isdigit takes these; a run id is ASCII digits only.
    assert parse_filter("١٢ ²").words == ("١٢", "²")
    with pytest.raises(FilterError, match=r"'id:²': '²' is not a run id"):
        parse_filter("id:²")


@pytest.mark.parametrize(("text", "message"), [
    ("k:ten", r"^'k:ten': 'ten' is not an integer$"),
    ("lr:<fast", r"^'lr:<fast': 'fast' is not a number$"),
    ("hidden:10,,5", r"'hidden:10,,5': '10,,5' is not sizes like 10,5"),
    ("model:fm", r"'model:fm': 'fm' must be one of mf, deepmf"),
    ("k:", r"^'k:': k needs a value after the colon, e.g. k:10$"),
    ("status:", r"status needs a value"),
    ("archived:", r"archived needs a value after the colon, e.g. archived:yes"),
    ("sweep:", r"sweep needs a value after the colon, e.g. sweep:3"),
    ("model:mf,", r"'model:mf,': model needs a value"),
    ("lr:<1e-3,1e-2", r"< compares with one value, not a list"),
    ("model:<mf", r"< compares numbers, and model is not a number"),
    ("sweep:>3", r"> compares numbers, and sweep is not a number"),
    ("status:finished", r"'finished' is not a status; use queued, running, done"),
    ("archived:maybe", r"archived is archived:yes, archived:no or archived:all"),
    ("archived:!=yes", r"archived is archived:yes"),
    ("colour:red", r"^'colour:red': no filter is called 'colour'"),
    ('model:"mf', r'a " is not closed'),
    ("k:" + "9" * 30, r"does not fit in 64 bits"),
    ("k:<-" + "9" * 30, r"does not fit in 64 bits"),
    ("lr:<1e999", r"'1e999' is not a finite number"),
    ("lr:nan", r"'nan' is not a finite number"),
    ("id:12a", r"'12a' is not a run id"),
])
def test_a_malformed_term_is_one_line_naming_it(text: str, message: str) -> None:
    with pytest.raises(FilterError, match=message) as raised:
        parse_filter(f"mf {text} other")
    assert "\n" not in str(raised.value)


def test_the_first_malformed_term_is_named_among_good_ones() -> None:
    with pytest.raises(FilterError, match="^'k:x'"):
        parse_filter("lr:<1e-2 k:x seed:y")


def test_hostile_text_is_a_word_or_an_error_never_anything_else() -> None:
    assert parse_filter("[/] [@click=app.quit]x[/] %_ ' ;DROP").words == (
        "[/]", "[@click=app.quit]x[/]", "%_", "'", ";DROP")
    with pytest.raises(FilterError, match=r"'model:\[/\]'"):
        parse_filter("model:[/]")
    # Digits of a huge run id are still an id (one no run has), not an error.
    assert terms("id:" + "9" * 30) == [("id", "=", (10**30 - 1,))]


def test_says_and_names_data() -> None:
    assert parse_filter("status:failed").says("status")
    assert not parse_filter("failed").says("status")
    for text in ("data:ml-1m", "data:all", "sweep:3", "id:4", "#4", "archived:yes"):
        assert parse_filter(text).names_data, text
    for text in ("lr:<1 12", "archived:all", "archived:no", "status:all"):
        assert not parse_filter(text).names_data, text
    assert parse_filter("#4").names_runs and not parse_filter("4").names_runs


def test_on_data_limits_to_a_dataset_unless_the_filter_chooses_its_own() -> None:
    assert parse_filter("k:8").on_data("ml-100k").terms[-1] == Term("data", "=", ("ml-100k",))
    assert parse_filter("k:8").on_data(None) == parse_filter("k:8")
    for text in ("data:ml-1m", "data:all", "sweep:3", "#4"):
        assert parse_filter(text).on_data("ml-100k") == parse_filter(text)


def test_parse_term_takes_a_flags_value_whole() -> None:
    assert parse_term("sweep", 'k "sweep"').terms == (Term("sweep", "=", ('k "sweep"',)),)
    assert parse_term("status", "failed,lost").terms == (Term("status", "=", ("failed", "lost")),)
    assert parse_term("data", "all") == RunFilter(all_data=True)
