"""The sync modules generated from `_async` by `scripts/unasync.py`."""
