"""The blocking twins, generated from `_async` by `scripts/unasync.py`."""
