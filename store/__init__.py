"""The results store: run parameters, the SQLAlchemy schema, queue operations and queries.

Imports neither the engine nor the TUI.
"""
