"""Dropping a webhook delivery seen before (re-exported from `callsid_resolver.webhooks`).

ElevenLabs retries transcript webhooks when the workspace webhook has retries on (up to 5 times,
on 5xx, 429 and 408: docs/protocol.md §12), so the same delivery can arrive twice, for example
when the first answer was slow. A delivery is named by `delivery_key(event)`: the conversation
id, the event type and the event timestamp. `seen(event)` records it and answers whether it was
recorded already, in one atomic step: of two concurrent deliveries exactly one gets False.

```python
if dedupe.seen(event):
    return Response(status_code=200)  # a retry of what we handled: acknowledge, do nothing
try:
    handle(event)
except Exception:
    dedupe.forget(event)  # the retry ElevenLabs sends after our 5xx must be handled
    raise
```

`MemoryDedupe` keeps at most `max_items` keys for `ttl` seconds in this process;
`AsyncRedisDedupe` (`_async/redis_dedupe.py`) and its generated twin `RedisDedupe` share them
across a fleet (`SET key 1 NX PX ttl`, one key per delivery, so
Redis expires them: the set stays bounded), under `Keys(namespace).webhook_delivery(...)`:
`<namespace>:webhook:{<delivery key>}`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from cachetools import TTLCache

__all__ = ["DEFAULT_TTL", "Delivery", "MemoryDedupe", "check_ttl", "delivery_key"]

DEFAULT_TTL = 24 * 3600.0  # retries come within minutes; a day leaves room for a slow queue


class Delivery(Protocol):
    """What names a delivery: a `WebhookEvent` is one (this module sits below `webhooks`)."""

    @property
    def type(self) -> str:
        """The event type (`post_call_transcription`, ...)."""
        ...

    @property
    def conversation_id(self) -> str | None:
        """The conversation the event is about, when it names one."""
        ...

    @property
    def event_timestamp(self) -> int | None:
        """When ElevenLabs emitted the event (unix seconds), when given."""
        ...


def delivery_key(event: Delivery | str) -> str:
    """The idempotency key of a delivery: `<type>:<conversation_id>:<event_timestamp>`.

    A string is taken as a key already. A missing part is `-`: an event without a timestamp is
    then one delivery per conversation and type.
    """
    if isinstance(event, str):
        return event
    timestamp = event.event_timestamp if event.event_timestamp is not None else "-"
    return f"{event.type}:{event.conversation_id or '-'}:{timestamp}"


def check_ttl(ttl: float) -> None:
    """Refuse a `ttl` that is not a positive number of seconds."""
    if not ttl > 0:  # also refuses NaN
        raise ValueError("ttl must be positive")


class MemoryDedupe:
    """Deliveries seen by this process: at most `max_items` keys, each kept `ttl` seconds;
    `clock` (monotonic seconds) is injectable for tests."""

    def __init__(
        self,
        *,
        max_items: int = 100_000,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        check_ttl(ttl)
        self._keys: TTLCache[str, bool] = TTLCache(maxsize=max_items, ttl=ttl, timer=clock)
        self._lock = threading.Lock()  # sync web frameworks call from several threads

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)

    def seen(self, event: Delivery | str) -> bool:
        """True if this delivery was seen before; else record it and return False."""
        key = delivery_key(event)
        with self._lock:
            if key in self._keys:
                return True
            self._keys[key] = True
            return False

    def forget(self, event: Delivery | str) -> None:
        """Forget a delivery (its handling failed: the retry must go through)."""
        with self._lock:
            self._keys.pop(delivery_key(event), None)
