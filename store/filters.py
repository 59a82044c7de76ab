"""The filter language of History's filter line and `dmf-tui runs --where`.

A filter is words separated by spaces, all of which a run must match:

  lr:<1e-2  k:>=32  model:mf,deepmf   any parameter, by its name or its column heading (wd, batch);
                                      numbers compare with < <= > >= = !=, a comma list gives
                                      alternatives (hidden layers separate them with /: 10,5/64,32);
                                      values are read by the parameter's own parser, as the form does
  lr<1e-2  k=32                       the same without the colon
  status:failed,lost  status:all      statuses (done only, unless a filter names one)
  sweep:3  sweep:lr-grid              a sweep by id or by name ("quoted" when it has spaces)
  data:ml-100k  dataset:u.data        a dataset, however its runs named it; data:all for every one
  archived:yes|no|all                 archived runs (hidden unless a filter asks; archived:yes
                                      lists the whole archive, of every dataset)
  id:12  id:>100  #12                 run ids (which lists runs of any status, archived or not)
  12                                  a run id, or the number in a run's text
  oom  "out of memory"                text in the notes, error, tags, dataset, model or sweep name

This module only reads the text into a RunFilter; store/queries.py turns one into SQL. It imports
neither the engine nor the TUI.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any, Literal

from store.errors import ParamError, StoreError
from store.params import INT64_LIMIT, PARAMS, format_value, parse_value
from store.status import STATUSES

Op = Literal["=", "!=", "<", "<=", ">", ">="]
# Longest first, so "<=" is not read as "<" followed by "=1".
OPS: tuple[Op, ...] = ("<=", ">=", "!=", "<", ">", "=")
ORDERING: tuple[Op, ...] = ("<", "<=", ">", ">=")

# Names a filter term may use besides the parameters (data is one), and the other names they go by.
FIELDS = ("id", "status", "sweep", "archived")
ALIASES = {"dataset": "data", **{declared.heading.lower(): name for name, declared in PARAMS.items()
                                  if declared.heading and declared.heading.lower() != name}}
ALL = "all"

# A token: a run of characters up to a space, where a "double-quoted part" may hold spaces.
_TOKEN = re.compile(r'(?:[^\s"]+|"[^"]*")+')
# `name<op>value` without a colon, for the names the language knows (k>=32, lr<1e-2).
_BARE_COMPARISON = re.compile(r"([A-Za-z_][\w-]*)(<=|>=|!=|<|>|=)(.*)", re.DOTALL)
_NAME = re.compile(r"[A-Za-z_][\w-]*")


class FilterError(StoreError):
    """A filter that cannot be read: one line naming the term at fault."""


@dataclass(frozen=True)
class Term:
    """One comparison: `name` (a parameter, or one of FIELDS) `op` any of `values` ("=" and "!="
    take several: in, not in; the ordering ops exactly one). Parameter values are as the parameter
    holds them (hidden layers as their text "10,5", how its column stores them); ids are ints;
    statuses, sweeps and datasets are the text typed; archived is True or False."""

    name: str
    op: Op
    values: tuple[Any, ...]


@dataclass(frozen=True)
class RunFilter:
    """What a filter line asks for. Every term, word and number must hold (AND)."""

    terms: tuple[Term, ...] = ()
    words: tuple[str, ...] = ()  # text each of which a run must contain somewhere
    numbers: tuple[int, ...] = ()  # bare numbers: the run's id, or the number in its text
    all_data: bool = False  # data:all: every dataset, whatever the listing's current one

    def says(self, name: str) -> bool:
        """Whether a term names `name` (a parameter or one of FIELDS)."""
        return any(term.name == name for term in self.terms)

    @property
    def names_runs(self) -> bool:
        """Whether it names runs by id: then the usual limits (done, not archived, one dataset)
        do not apply, as a person asking for run 12 wants run 12 whatever it is."""
        return self.says("id")

    @property
    def names_data(self) -> bool:
        """Whether it chooses the datasets itself, so a listing's current dataset does not apply:
        a data: term or data:all, runs by id or sweep, or the archive (archived:yes, which is
        browsed whole rather than ranked: an archived dataset is no listing's current one)."""
        browses_archive = Term("archived", "=", (True,)) in self.terms
        return self.all_data or self.says("data") or self.says("sweep") or self.names_runs or browses_archive

    def on_data(self, key: str | None) -> RunFilter:
        """This filter limited to the dataset `key` (a catalog key) unless it chooses its datasets
        itself; `key` None leaves it on every dataset."""
        if key is None or self.names_data:
            return self
        return self.and_(RunFilter(terms=(Term("data", "=", (key,)),)))

    def and_(self, other: RunFilter) -> RunFilter:
        """Runs that match both filters."""
        return replace(self, terms=self.terms + other.terms, words=self.words + other.words,
                       numbers=self.numbers + other.numbers, all_data=self.all_data or other.all_data)


def parse_filter(text: str) -> RunFilter:
    """The RunFilter `text` asks for; FilterError names the first malformed term."""
    if text.count('"') % 2:
        raise FilterError('a " is not closed: quote text with spaces "like this"')
    result = RunFilter()
    for token in _TOKEN.findall(text):
        result = result.and_(_parse_token(token))
    return result


def parse_term(name: str, value: str) -> RunFilter:
    """One `name:value` term, the value taken whole (as a command-line flag gives it: no quotes)."""
    return _term(name, value, f"{name}:{value}", quoted=False)


def _parse_token(token: str) -> RunFilter:
    if token.startswith('"'):
        return _word(token.replace('"', ""))
    if token.startswith("#") and token[1:].isascii() and token[1:].isdigit():
        return RunFilter(terms=(Term("id", "=", (int(token[1:]),)),))
    if token.isascii() and token.isdigit():
        return RunFilter(numbers=(int(token),))
    name, colon, value = token.partition(":")
    if colon and _NAME.fullmatch(name):
        return _term(name, value, token, quoted='"' in value)
    bare = _BARE_COMPARISON.fullmatch(token)
    if bare and _known(bare.group(1)):
        return _term(bare.group(1), bare.group(2) + bare.group(3), token, quoted='"' in token)
    return _word(token.replace('"', ""))


def _word(text: str) -> RunFilter:
    return RunFilter(words=(text,)) if text.strip() else RunFilter()


def _known(name: str) -> str | None:
    """The parameter or field `name` means (any case; - for _; a heading for its parameter)."""
    name = name.lower().replace("-", "_")
    name = ALIASES.get(name, name)
    return name if name in PARAMS or name in FIELDS else None


def _term(typed_name: str, text: str, token: str, *, quoted: bool) -> RunFilter:
    name = _known(typed_name)
    if name is None:
        raise FilterError(f"{token!r}: no filter is called {typed_name!r}; use a parameter (lr, k, model, ...), "
                          f"{', '.join(FIELDS)}, data, or \"quote\" text with a colon")
    op: Op = next((o for o in OPS if text.startswith(o)), "=")
    value = text[len(op):] if text.startswith(op) else text
    if quoted:
        # A quoted value is one value, commas and all (a sweep named "a, b").
        values = [value.replace('"', "")]
    else:
        separator = PARAMS[name].separator if name in PARAMS else ","
        values = [part.strip() for part in value.split(separator)]
    if not value.strip() or any(not v for v in values):
        raise FilterError(f"{token!r}: {typed_name} needs a value after the colon, e.g. {_example(name)}")
    if op in ORDERING and len(values) > 1:
        raise FilterError(f"{token!r}: {op} compares with one value, not a list")
    if name == "data" and values == [ALL] and op == "=":
        return RunFilter(all_data=True)
    if name == "status" and [v.lower() for v in values] == [ALL] and op == "=":
        return RunFilter(terms=(Term("status", "=", STATUSES),))
    if name == "archived":
        return RunFilter(terms=(_archived(op, values, token),))
    if op in ORDERING and not _ordered(name):
        raise FilterError(f"{token!r}: {op} compares numbers, and {name} is not a number; use {name}:VALUE or "
                          f"{name}:!=VALUE")
    return RunFilter(terms=(Term(name, op, tuple(_value(name, op, v, token) for v in values)),))


def _archived(op: Op, values: list[str], token: str) -> Term:
    if op != "=" or len(values) != 1 or values[0].lower() not in ("yes", "no", ALL):
        raise FilterError(f"{token!r}: archived is archived:yes, archived:no or archived:all")
    return Term("archived", "=", {"yes": (True,), "no": (False,), ALL: (True, False)}[values[0].lower()])


def _ordered(name: str) -> bool:
    """Whether values of `name` have an order a comparison can use: ids and number parameters."""
    if name == "id":
        return True
    default = PARAMS[name].default if name in PARAMS else None
    return isinstance(default, (int, float)) and not isinstance(default, bool)


def _value(name: str, op: Op, text: str, token: str) -> Any:
    """One value of a term, as the store compares it."""
    if name == "id":
        if not (text.isascii() and text.isdigit()):  # str.isdigit takes '²', which int() refuses
            raise FilterError(f"{token!r}: {text!r} is not a run id")
        return int(text)
    if name == "status":
        if text.lower() not in STATUSES:
            raise FilterError(f"{token!r}: {text!r} is not a status; use {', '.join(STATUSES)} or all")
        return text.lower()
    if name in ("sweep", "data"):
        return text  # an id or name, a dataset spec: store/queries.py looks them up
    try:
        value = parse_value(name, text)
    except ParamError as exc:
        raise FilterError(f"{token!r}: {str(exc).removeprefix(f'{name}: ')}") from None
    problem = _comparable(value)
    check = PARAMS[name].check
    if not problem and check is not None and op in ("=", "!="):
        problem = check(value)  # a value its parameter refuses (model:fm) is a typo: no run has it
    if problem:
        raise FilterError(f"{token!r}: {text!r} {problem}")
    # Stored as its text (a tuple column holds "10,5"), and compared so.
    return format_value(value) if isinstance(value, tuple) else value


def _comparable(value: Any) -> str | None:
    """Why a number cannot be compared with the stored ones (SQLite holds 64-bit integers, and NaN
    as NULL), or None."""
    if isinstance(value, int) and not isinstance(value, bool) and not -INT64_LIMIT <= value < INT64_LIMIT:
        return "does not fit in 64 bits"
    if isinstance(value, float) and not math.isfinite(value):
        return "is not a finite number"
    return None


def _example(name: str) -> str:
    examples = {"id": "id:12", "status": "status:failed", "sweep": "sweep:3", "data": "data:ml-100k",
                "archived": "archived:yes"}
    if name in examples:
        return examples[name]
    return f"{name}:{format_value(PARAMS[name].default)}"
