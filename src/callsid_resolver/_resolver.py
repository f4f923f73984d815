"""Transitional: the resolvers' old home, kept until every importer names the new one.

The resolvers live in `_async/resolver.py` (by hand) and `_sync/resolver.py` (generated). The
lead switches the remaining `from ._resolver import ...` lines (`__init__`, `cli`, `_demo`,
`mcp_server`, `live/`) at merge and deletes this module with `ResolverOptions`/`ResolveHints`,
which no resolver takes any more: options and hints are keyword arguments.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

from ._async.resolver import AsyncCallSidResolver
from ._sync.resolver import CallSidResolver

__all__ = ["AsyncCallSidResolver", "CallSidResolver", "ResolveHints", "ResolverOptions"]


class ResolverOptions(TypedDict, total=False):
    """Deprecated: the resolvers' keyword-only constructor arguments, as a type."""

    max_scan: int
    concurrency: int
    negative_ttl: float
    live_ttl: float
    use_filter: bool
    live_first: bool
    namespace: str


class ResolveHints(TypedDict, total=False):
    """Deprecated: the keyword-only hints of `resolve()`, as a type."""

    agent_id: str | None
    phone_number_id: str | None
    started_after: datetime | int | float | None
    started_before: datetime | int | float | None
    initiation_source: str | None
    in_progress: bool
