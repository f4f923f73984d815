"""Sans-I/O core: everything the sync and async twins share, and nothing that does I/O.

Request building and response decoding (`_api`), the retry policy (`_retry`) and the retry loop
both clients run (`_flow`), call-SID validation (`_callsid`), the resolution strategy (`_plan`,
its steps in `_ops`, the scan's read window in `_window`), the key scheme (`_keys`) and what a
cache stores (`_store`) are written once here. The clients and resolvers (`_async/`, written by
hand, and `_sync/`, generated from them) only drive them with httpx and the cache.
"""
