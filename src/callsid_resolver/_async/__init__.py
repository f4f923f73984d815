"""The asyncio twins, written by hand; `scripts/unasync.py` makes `_sync` from them."""
