"""How much memory a run needs, estimated from its dataset's shape and its parameters, so that a run
that cannot fit is refused at once rather than growing until the system kills it (`--k 100000000`
would take a process past 8 GB before failing).

No torch and no engine here: the store checks runs as they are queued (the TUI's form included) for
the datasets whose shape it knows, and the trainer checks again against the device it is about to
fill, with the shape of the data it loaded.
"""

from __future__ import annotations

import itertools
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


# The models that reconstruct whole item rows of a dense item x user matrix (store.params.PAIR_MODELS
# are the others); engine.models.ROW_MODELS, which tests/test_trainer.py keeps equal.
ROW_MODELS = ("autorec", "glocal_k")

# Entries of the reconstruction a row model evaluates at once: engine/item_matrix.py's RECONSTRUCT_BLOCK
# (tests/test_memory.py keeps them equal).
RECONSTRUCT_BLOCK = 1 << 26


def training_bytes(shape: Shape, *, model: str, k: int, hidden: Sequence[int], bias: bool,
                   batch_size: int) -> int:
    """About what training needs at its peak; a floor, not a bound, that catches what cannot fit."""
    if model in ROW_MODELS:
        return _row_model_bytes(shape, model=model, k=k, hidden=hidden, batch_size=batch_size)
    tables = 4 if model == "neumf" else 2  # NeuMF: a GMF and an MLP pair of tables
    n_params = (shape.n_users + shape.n_items) * k * tables
    if bias:
        n_params += shape.n_users + shape.n_items + 1
    # Each rating's activations: its looked-up rows, then what the head computes from them.
    per_row = tables * k
    if model == "gmf":  # the rows' product, weighted by a k-vector
        n_params += k + 1
        per_row += k
    elif model in ("deepmf", "neumf"):
        width = 2 * k  # the MLP over the user and item rows: 2k -> hidden... (-> 1 for DeepMF)
        for size in (*hidden, 1) if model == "deepmf" else hidden:
            n_params += width * size + size
            width = size
        per_row += sum(hidden)
        if model == "neumf":  # the last layer reads the GMF product and the MLP's output
            n_params += k + width + 1
            per_row += k
    # Each parameter, its gradient and Adam's two moments.
    state = n_params * 4 * FLOAT32
    # Each rating on the device (user and item int64, rating float32), plus every epoch's shuffled
    # copy of the train rows and the permutation that drew it.
    row = 2 * INT64 + FLOAT32
    data = shape.n_ratings * (2 * row + INT64)
    # One batch's activations, forward and backward.
    activations = min(batch_size, shape.n_ratings) * per_row
    return state + data + 2 * FLOAT32 * activations


def _row_model_bytes(shape: Shape, *, model: str, k: int, hidden: Sequence[int], batch_size: int) -> int:
    """`training_bytes` of an autoencoder over item rows: AutoRec (n_users -> k -> n_users) or GLocal-K
    (n_users -> hidden... -> n_users, every weight matrix times a kernel matrix made from k-wide
    vectors, approximated alike)."""
    widths = [shape.n_users, *(hidden if model == "glocal_k" else (k,)), shape.n_users]
    layers = list(itertools.pairwise(widths))
    weights = sum(n_in * n_out for n_in, n_out in layers)
    n_params = weights + sum(n_out for _, n_out in layers)
    extra = 0
    if model == "glocal_k":
        n_params += sum((n_in + n_out) * k for n_in, n_out in layers)
        # Each step's kernel matrices and kernelled weights, and their gradients.
        extra = 4 * weights * FLOAT32
    # Each parameter, its gradient and Adam's two moments.
    state = n_params * 4 * FLOAT32
    # The dense training matrix (float32) and its mask (bool), and the ratings the trainer keeps.
    matrices = shape.n_items * shape.n_users * (FLOAT32 + 1)
    data = shape.n_ratings * (2 * INT64 + FLOAT32)
    # A batch of item rows through the network and back, or the block of rows evaluation
    # reconstructs at once (forward only), whichever is larger: each row's input, every layer's
    # output and its error.
    per_row = 2 * shape.n_users + sum(widths[1:])
    trained = 2 * min(batch_size, shape.n_items) * per_row
    evaluated = min(shape.n_items, max(1, RECONSTRUCT_BLOCK // shape.n_users)) * per_row
    return state + extra + matrices + data + FLOAT32 * max(trained, evaluated)


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
