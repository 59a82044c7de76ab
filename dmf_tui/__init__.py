"""dmf-tui: a terminal experiment manager for MF and DeepMF on MovieLens."""

__version__ = "0.1.0"
