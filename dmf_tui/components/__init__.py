"""The TUI's widgets and screens, one module each."""
