"""How much memory a run needs, estimated from its dataset's shape and its parameters, so that a run
that cannot fit is refused at once rather than growing until the system kills it (`--k 100000000`
would take a process past 8 GB before failing).

No torch and no engine here: the store checks runs as they are queued (the TUI's form included) for
the datasets whose shape it knows, and the trainer checks again against the device it is about to
fill, with the shape of the data it loaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

GIB = 1 << 30
FLOAT32 = 4
INT64 = 8


@dataclass(frozen=True)
class Shape:
    n_users: int
    n_items: int
    n_ratings: int


# The named datasets' shapes (users and items that have ratings); tests/test_memory.py checks them
# against the engine's registry and synthetic shapes.
KNOWN_SHAPES: dict[str, Shape] = {
    "ml-100k": Shape(943, 1_682, 100_000),
    "ml-1m": Shape(6_040, 3_706, 1_000_209),
    "ml-10m": Shape(69_878, 10_677, 10_000_054),
    "ml-20m": Shape(138_493, 26_744, 20_000_263),
    "ml-25m": Shape(162_541, 59_047, 25_000_095),
    "ml-32m": Shape(200_948, 84_432, 32_000_204),
    "ml-latest-small": Shape(610, 9_724, 100_836),
    "synthetic-100k": Shape(943, 1_682, 100_000),
    "synthetic-1m": Shape(6_040, 3_706, 1_000_209),
}


def training_bytes(shape: Shape, *, model: str, k: int, hidden: Sequence[int], bias: bool,
                   batch_size: int) -> int:
    """About what training needs at its peak; a floor, not a bound, that catches what cannot fit."""
    n_params = (shape.n_users + shape.n_items) * k
    if bias:
        n_params += shape.n_users + shape.n_items + 1
    width = 2 * k  # DeepMF's MLP: 2k -> hidden... -> 1
    if model == "deepmf":
        for size in (*hidden, 1):
            n_params += width * size + size
            width = size
    # Each parameter, its gradient and Adam's two moments.
    state = n_params * 4 * FLOAT32
    # Each rating on the device (user and item int64, rating float32), plus every epoch's shuffled
    # copy of the train rows and the permutation that drew it.
    row = 2 * INT64 + FLOAT32
    data = shape.n_ratings * (2 * row + INT64)
    # One batch's looked-up embeddings and hidden activations, forward and backward.
    activations = min(batch_size, shape.n_ratings) * (2 * k + (sum(hidden) if model == "deepmf" else 0))
    return state + data + 2 * FLOAT32 * activations


def shortfall(need: int, have: int | None, where: str, *, free: bool = False) -> str | None:
    """The one-line reason a run needing `need` bytes cannot run where `have` bytes are (None when
    it fits, or when how much there is cannot be told); `where` names what has them."""
    if have is None or need <= have:
        return None
    return (f"needs about {gib(need)} for its model, Adam's state and data, "
            f"{where} has {gib(have)}{' free' if free else ''}")


@cache
def physical_memory() -> int | None:
    """This machine's RAM in bytes; None where the system does not say (Windows)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def gib(n: int) -> str:
    return f"{n / GIB:,.1f} GiB"
