"""Presets: named configurations to start from (`--preset NAME`, the form's Preset field), each with
the figures it reached when measured (bench/bench_presets.py), and `best`, the name of the most
accurate one.

A preset is a whole training configuration: applied, it sets every parameter in SETS (its values,
the defaults for the rest), so what it queues is what was measured, whatever the form or the run it
is applied to held before (a batch size left over from another preset would train something else).
It leaves KEPT alone: what is trained on, where, and which seed. Flags given with a preset win.

Every preset holds out a validation part (val_size 0.1): the best epoch is chosen by validation RMSE,
patience stops early, and the figures report the test RMSE at that epoch, never chosen by it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from store.errors import ParamError
from store.params import PARAMS, RunParams, format_value

# What a preset never changes: the data and how it is split, the device, and the seed (a replicate).
KEPT = ("data", "device", "seed", "split_seed", "test_size")
SETS = tuple(name for name in PARAMS if name not in KEPT)

# The datasets presets are measured on, as `dmf-tui presets` titles them.
MEASURED_ON = {"ml-100k": "ML-100K", "synthetic-1m": "ML-1M shape"}


@dataclass(frozen=True)
class Figure:
    """What bench/bench_presets.py measured for a preset on one dataset (its snippet, pasted here)."""

    test_rmse: float  # at the best epoch by validation RMSE
    val_rmse: float
    best_epoch: int
    epochs: int  # run, early stopping included
    seconds: float  # the whole fit(), evaluation included
    measured: str  # when and where, e.g. "2025-06-01 on Intel Xeon, 2 CPUs, cpu"
    # The preset's fingerprint() when measured: a preset whose values changed since no longer
    # matches, and tests/test_presets.py asks for its figures to be measured again.
    config: str


@dataclass(frozen=True)
class Preset:
    name: str
    summary: str  # one short line: `dmf-tui presets` and the form show it
    values: Mapping[str, Any]  # RunParams values, those that differ from the defaults
    figures: Mapping[str, Figure] = field(default_factory=dict)  # by dataset, MEASURED_ON's names

    def __post_init__(self) -> None:
        outside = sorted(set(self.values) - set(SETS))
        if outside:
            raise ValueError(f"preset {self.name}: {', '.join(outside)} cannot be set by a preset")

    def settings(self) -> dict[str, Any]:
        """Every parameter the preset sets, by name: its values, else the defaults."""
        defaults = RunParams()
        return {name: self.values.get(name, getattr(defaults, name)) for name in SETS}

    def apply(self, base: RunParams) -> RunParams:
        """`base` with every parameter the preset sets replaced; ParamError if that is invalid."""
        return dataclasses.replace(base, **self.settings()).validate()

    def fingerprint(self) -> str:
        """A short digest of the settings away from the defaults: equal exactly when the preset trains
        the same configuration (a parameter added later at its default changes nothing)."""
        changed = {name: format_value(value) for name, value in self.settings().items()
                   if value != PARAMS[name].default}
        text = json.dumps(changed, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]


# Where the figures below were measured (bench/bench_presets.py, seed 0, the lab's split).
ON_2CPUS = "2026-12-01 on Intel(R) Xeon(R) Processor, 2 CPUs, cpu"

PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("lab", "the reference lab's MF: K 10, Adam with weight decay",
           {"val_size": 0.1, "patience": 5},
           {"ml-100k": Figure(test_rmse=3.8731, val_rmse=3.8751, best_epoch=20, epochs=20, seconds=0.5,
                              measured=ON_2CPUS, config="86e4802e48"),
            "synthetic-1m": Figure(test_rmse=1.0028, val_rmse=1.0052, best_epoch=20, epochs=20, seconds=11.0,
                                   measured=ON_2CPUS, config="86e4802e48")}),
    Preset("lab-deepmf", "the reference lab's DeepMF: K 10, hidden 10,5",
           {"model": "deepmf", "val_size": 0.1, "patience": 5},
           {"ml-100k": Figure(test_rmse=0.9743, val_rmse=0.9659, best_epoch=20, epochs=20, seconds=1.0,
                              measured=ON_2CPUS, config="c45a3f3a75"),
            "synthetic-1m": Figure(test_rmse=0.9723, val_rmse=0.9766, best_epoch=16, epochs=20, seconds=17.0,
                                   measured=ON_2CPUS, config="c45a3f3a75")}),
    Preset("mf", "biased MF, K 128, per-rating L2 on the rows used",
           {"model": "mf", "bias": True, "k": 128, "init_std": 0.01, "lr": 2e-3, "weight_decay": 0.0,
            "reg": 0.1, "batch_size": 1024, "epochs": 100, "patience": 5, "val_size": 0.1, "clip": True},
           {"ml-100k": Figure(test_rmse=0.9054, val_rmse=0.8960, best_epoch=51, epochs=56, seconds=7.9,
                              measured=ON_2CPUS, config="5fe6820106"),
            "synthetic-1m": Figure(test_rmse=0.8762, val_rmse=0.8792, best_epoch=17, epochs=22, seconds=79.3,
                                   measured=ON_2CPUS, config="5fe6820106")}),
    Preset("deepmf", "DeepMF, K 32, MLP 64,32, L2 and dropout on the embeddings",
           {"model": "deepmf", "bias": True, "k": 32, "hidden": (64, 32), "init_std": 0.01, "lr": 1e-3,
            "weight_decay": 0.0, "reg": 1.0, "emb_dropout": 0.5, "batch_size": 1024, "epochs": 100, "patience": 5,
            "val_size": 0.1, "clip": True},
           {"ml-100k": Figure(test_rmse=0.9271, val_rmse=0.9148, best_epoch=38, epochs=43, seconds=20.7,
                              measured=ON_2CPUS, config="373d04b677"),
            "synthetic-1m": Figure(test_rmse=0.9160, val_rmse=0.9200, best_epoch=59, epochs=64, seconds=442.7,
                                   measured=ON_2CPUS, config="373d04b677")}),
    Preset("gmf", "GMF (He et al. 2017): biased MF with a learned output weight",
           {"model": "gmf", "k": 32, "bias": True, "init_std": 0.01, "lr": 2e-3, "weight_decay": 0.0, "reg": 0.3,
            "reg_bias": 0.01, "epochs": 60, "patience": 5, "val_size": 0.1, "clip": True},
           {"ml-100k": Figure(test_rmse=0.9135, val_rmse=0.9061, best_epoch=37, epochs=42, seconds=16.8,
                              measured=ON_2CPUS, config="d08a09f374"),
            "synthetic-1m": Figure(test_rmse=0.8694, val_rmse=0.8727, best_epoch=8, epochs=13, seconds=96.8,
                                   measured=ON_2CPUS, config="d08a09f374")}),
    Preset("neumf", "NeuMF (He et al. 2017): GMF beside an MLP 64,32",
           {"model": "neumf", "k": 32, "hidden": (64, 32), "bias": True, "init_std": 0.01, "lr": 2e-3,
            "weight_decay": 0.0, "reg": 0.05, "reg_bias": 0.01, "epochs": 60, "patience": 5, "val_size": 0.1,
            "clip": True},
           {"ml-100k": Figure(test_rmse=0.9203, val_rmse=0.9076, best_epoch=8, epochs=13, seconds=9.0,
                              measured=ON_2CPUS, config="14857bbbc7"),
            "synthetic-1m": Figure(test_rmse=0.8703, val_rmse=0.8744, best_epoch=6, epochs=11, seconds=97.5,
                                   measured=ON_2CPUS, config="14857bbbc7")}),
    Preset("autorec", "I-AutoRec (Sedhain et al. 2015): 500 hidden units",
           {"model": "autorec", "k": 500, "lr": 3e-3, "weight_decay": 0.0, "reg": 200.0, "batch_size": 256,
            "schedule": "cosine", "epochs": 60, "val_size": 0.1, "clip": True},
           {"ml-100k": Figure(test_rmse=0.8912, val_rmse=0.8856, best_epoch=52, epochs=60, seconds=10.9,
                              measured=ON_2CPUS, config="1a2f838d99"),
            "synthetic-1m": Figure(test_rmse=0.9140, val_rmse=0.9167, best_epoch=37, epochs=60, seconds=108.4,
                                   measured=ON_2CPUS, config="1a2f838d99")}),
    Preset("glocal-k", "GLocal-K (Han et al. 2021): kernelised autoencoder",
           {"model": "glocal_k", "k": 5, "hidden": (500, 500), "lr": 1e-3, "weight_decay": 0.0, "reg": 20.0,
            "batch_size": 128, "epochs": 70, "patience": 10, "pretrain_epochs": 40, "val_size": 0.1,
            "clip": True},
           {"ml-100k": Figure(test_rmse=0.8957, val_rmse=0.8846, best_epoch=55, epochs=65, seconds=27.0,
                              measured=ON_2CPUS, config="9e95945971"),
            "synthetic-1m": Figure(test_rmse=0.8891, val_rmse=0.8937, best_epoch=40, epochs=50, seconds=211.1,
                                   measured=ON_2CPUS, config="9e95945971")}),
)}

# `--preset best`: the preset with the lowest validation RMSE on ML-100K, the real MovieLens data we
# measure on (the synthetic ML-1M shape is a rank-5 model that favours the factor models, so it shows
# cost, not rank: bench/RESULTS.md). A name rather than a copy, so it never drifts from the preset.
BEST = "glocal-k"


def names() -> tuple[str, ...]:
    """Every name `preset()` takes: best first."""
    return ("best", *PRESETS)


def preset(name: str) -> Preset:
    """The preset called `name` ("best" is BEST's); ParamError naming the choices otherwise."""
    key = name.strip().lower()
    key = BEST if key == "best" else key
    if key not in PRESETS:
        raise ParamError(f"preset: {name.strip()!r} is not one of {', '.join(names())}")
    return PRESETS[key]
