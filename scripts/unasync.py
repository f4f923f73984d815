"""Generate the sync twins from their async sources, as httpcore and hishel do.

Each pair below names an async module written by hand and the sync module made from it by
whole-word substitutions. `python scripts/unasync.py` rewrites the sync files;
`python scripts/unasync.py --check` (run by `.ci/run`) fails when one is out of date.
Only the concurrency primitives that differ beyond names stay hand-written, in
`src/callsid_resolver/_concurrency.py` (see docs/architecture.md).
"""

from __future__ import annotations

import difflib
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "callsid_resolver"

# (async source, generated sync module), relative to src/callsid_resolver.
PAIRS: list[tuple[str, str]] = [
    ("_async/client.py", "_sync/client.py"),
    ("_async/redis_cache.py", "_sync/redis_cache.py"),
    ("_async/tiered_cache.py", "_sync/tiered_cache.py"),
    ("_async/resolver.py", "_sync/resolver.py"),
    ("_async/redis_dedupe.py", "_sync/redis_dedupe.py"),
]

# Whole words (or dotted names) of the async source and what the sync twin says instead.
SUBSTITUTIONS: dict[str, str] = {
    "async def": "def",
    "async with": "with",
    "async for": "for",
    "await ": "",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "__aiter__": "__iter__",
    "__anext__": "__next__",
    "StopAsyncIteration": "StopIteration",
    "AsyncIterator": "Iterator",
    "AsyncIterable": "Iterable",
    "AsyncGenerator": "Generator",
    "AbstractAsyncContextManager": "AbstractContextManager",
    "asynccontextmanager": "contextmanager",
    "aclose": "close",
    "aiter_bytes": "iter_bytes",
    "handle_async_request": "handle_request",
    "asyncio.sleep": "time.sleep",
    "httpx.AsyncClient": "httpx.Client",
    "httpx.AsyncBaseTransport": "httpx.BaseTransport",
    "httpx.AsyncHTTPTransport": "httpx.HTTPTransport",
    "redis.asyncio.Redis": "redis.Redis",
    "redis.asyncio": "redis",
    "AsyncResolutionCache": "ResolutionCache",
    "AsyncFlightLock": "FlightLock",
    "AsyncElevenLabsClient": "ElevenLabsClient",
    # The hand-written pairs of `_concurrency.py`.
    "AsyncInFlight": "InFlight",
    "AsyncDeadlineGuard": "DeadlineGuard",
    "AsyncSleep": "Sleep",
    "AsyncBackend": "Backend",
    "async_pool_transport": "pool_transport",
    "AsyncCallSidResolver": "CallSidResolver",
    "AsyncRedisCache": "RedisCache",
    "AsyncTieredCache": "TieredCache",
    "AsyncRedisDedupe": "RedisDedupe",
    "_async": "_sync",
    # The resolver's (src/callsid_resolver/_async/resolver.py).
    "import asyncio": "import time",
    "TaskFlights": "ThreadFlights",
    "AsyncResolverCache": "ResolverCache",
    "as_async_cache": "as_blocking_cache",
    "async_flight_lock": "flight_lock",
    "async_parallel_reads": "parallel_reads",
}

_PATTERN = re.compile(
    "|".join(
        rf"(?<!\w){re.escape(word)}" + ("" if word.endswith(" ") else r"(?!\w)")
        for word in sorted(SUBSTITUTIONS, key=len, reverse=True)
    )
)


def unasync_text(source: str, source_name: str) -> str:
    """The sync twin of an async module's text."""
    body = _PATTERN.sub(lambda match: SUBSTITUTIONS[match.group(0)], source)
    header = f"# Generated from {source_name} by scripts/unasync.py: edit that file, not this.\n"
    # Renamed imports may fall out of order or go unused (`import asyncio` for `asyncio.sleep`),
    # a loop of `yield`s may become a `yield from` (which an async generator cannot use), and
    # dropping `await` shortens lines: let ruff mend those, so that `ruff check` and
    # `ruff format --check` agree with the generated file. Only these rules are applied.
    fixes = ["check", "--fix", "--unsafe-fixes", "--exit-zero", "--quiet"]
    fixed = _ruff([*fixes, "--select", "F401,I001,UP028"], header + body)
    return _ruff(["format"], fixed)


def _ruff(command: list[str], text: str) -> str:
    # The stdin file name places the text in the package, for ruff's first-party imports.
    stdin_name = str(PACKAGE / "_sync" / "generated.py")
    done = subprocess.run(  # noqa: S603 (only the two ruff command lines above)
        [sys.executable, "-m", "ruff", *command, "--stdin-filename", stdin_name, "-"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return done.stdout


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = 0
    for source, target in PAIRS:
        wanted = unasync_text((PACKAGE / source).read_text(), source)
        path = PACKAGE / target
        current = path.read_text() if path.exists() else ""
        if current == wanted:
            continue
        if check:
            stale += 1
            diff = difflib.unified_diff(
                current.splitlines(keepends=True),
                wanted.splitlines(keepends=True),
                f"{target} (on disk)",
                f"{target} (generated from {source})",
            )
            sys.stdout.writelines(diff)
        else:
            path.write_text(wanted)
            print(f"wrote {target}")
    if stale:
        print(f"{stale} generated file(s) out of date: run `python scripts/unasync.py`")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
