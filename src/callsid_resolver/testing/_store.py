"""The conversations an emulator holds, kept in listing order.

`GET /v1/convai/conversations` sorts by `start_time_unix_secs`, newest first by default. The store
keeps one list in that order (ties broken by `conversation_id`, so the order is total and a cursor
can name a position by its key), sorted once and then kept sorted by insertion: a page of a
100,000-conversation history costs a bisect and a short walk, never a sort.

The lists are replaced, never changed in place, so a page being read on the server thread never
sees a half-done insertion from the test thread.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable

from .._json import Json
from ._view import index_values

__all__ = ["ConversationStore", "Key", "sort_key"]

# (-start_time_unix_secs, conversation_id): ascending order of keys is newest first.
Key = tuple[int, str]

# Above this many additions since the last read, one sort beats that many insertions.
_INSERT_LIMIT = 32


def sort_key(conversation: Json) -> Key:
    return (-int(conversation["metadata"]["start_time_unix_secs"]), conversation["conversation_id"])


class ConversationStore:
    """Full GET-conversation objects by id, plus the newest-first order and a call-id index."""

    def __init__(self, conversations: Iterable[Json] = ()) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, Json] = {}
        self._keys: list[Key] = []
        self._rows: list[Json] = []
        self._pending: list[Json] = []
        self._resort = False
        # The resolver's one-request lookups (`system__call_sid:eq:<sid>`, `system__call_id:eq:`)
        # answered from an index, as a real database would, so a deep history does not make the
        # emulator the bottleneck. It holds every id a profile may show; the filter then decides.
        self._by_call_id: dict[str, set[str]] = {}
        for conversation in conversations:
            self.add(conversation)

    def add(self, conversation: Json) -> None:
        """Add or replace (same `conversation_id`) a conversation."""
        conversation_id = conversation["conversation_id"]
        values = index_values(conversation)
        with self._lock:
            if conversation_id in self._by_id:
                self._resort = True  # the old row must leave the ordered lists
            self._by_id[conversation_id] = conversation
            self._pending.append(conversation)
            for value in values:
                self._by_call_id.setdefault(value, set()).add(conversation_id)

    def get(self, conversation_id: str) -> Json | None:
        return self._by_id.get(conversation_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def ordered(self) -> tuple[list[Key], list[Json]]:
        """Keys and conversations, newest first. Treat both lists as read-only."""
        with self._lock:
            if self._resort or len(self._pending) > _INSERT_LIMIT:
                pairs = sorted((sort_key(c), c) for c in self._by_id.values())
                self._keys = [key for key, _ in pairs]
                self._rows = [row for _, row in pairs]
            elif self._pending:
                keys, rows = list(self._keys), list(self._rows)
                for conversation in self._pending:
                    key = sort_key(conversation)
                    at = bisect_left(keys, key)
                    keys.insert(at, key)
                    rows.insert(at, conversation)
                self._keys, self._rows = keys, rows
            self._pending.clear()
            self._resort = False
            return self._keys, self._rows

    def with_call_id(self, value: str) -> list[Json]:
        """Conversations that may show `value` as a call id, newest first (a superset: the
        caller applies the filter itself). Replaced conversations may linger: re-checked."""
        with self._lock:
            ids = list(self._by_call_id.get(value, ()))
        found = [c for i in ids if (c := self._by_id.get(i)) and value in index_values(c)]
        return sorted(found, key=sort_key)
