"""The command modules of `dmf-tui`, one per group of verbs."""
