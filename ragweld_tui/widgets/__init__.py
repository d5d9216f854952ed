"""Reusable widgets of the TUI: charts, the runs table, the event log, the history input."""
