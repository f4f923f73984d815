"""The async modules written by hand; `scripts/unasync.py` generates their `_sync` twins."""
