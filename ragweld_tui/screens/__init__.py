"""The TUI's screens: one Screen per module (modes: runs, metrics, scatter, repl; the rest are pushed)."""
