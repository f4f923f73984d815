"""Sans-I/O core: everything the sync and async twins share, and nothing that does I/O.

Request building and response decoding (`_api`), the retry policy (`_retry`), call-SID validation
(`_callsid`) and the resolution strategy (`_plan`) are written once here; `_client.py` and
`_resolver.py` only drive them with `httpx.Client`/`httpx.AsyncClient`.
"""
