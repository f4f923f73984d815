"""Modules written for asyncio by hand; scripts/unasync.py generates their twins in `_sync`."""
