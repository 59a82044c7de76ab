"""The training engine: data loading, id remapping, splits, models, the trainer and the worker.

Importing this package is cheap; the modules that need torch import it themselves.
"""
