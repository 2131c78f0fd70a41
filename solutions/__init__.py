"""Reference implementations of every Descent exercise, one module per chapter."""
