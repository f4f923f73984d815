"""Blocking twins generated from `_async` by scripts/unasync.py: edit the async sources."""
