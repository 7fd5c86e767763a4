"""Pure auth logic: token claims and authorization decisions, no I/O."""
