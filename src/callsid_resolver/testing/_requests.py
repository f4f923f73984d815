"""The emulator's request log: every request it saw, with the status it answered."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

__all__ = ["RequestLog", "RequestRecord"]


@dataclass
class RequestRecord:
    """One request as the emulator saw it; `status` is None for a dropped connection."""

    number: int
    method: str
    path: str
    params: list[tuple[str, str]]
    endpoint: str
    status: int | None = None

    @property
    def request_id(self) -> str:
        """The `request-id` the emulator answered this request with."""
        return f"emu_{self.number:08d}"

    def param(self, name: str) -> str | None:
        """The first value of a query parameter."""
        return next((v for k, v in self.params if k == name), None)

    def param_list(self, name: str) -> list[str]:
        """Every value of a repeated query parameter."""
        return [v for k, v in self.params if k == name]


@dataclass
class RequestLog(Sequence[RequestRecord]):
    """Every request that reached the emulator, including the ones answered 429/5xx or dropped.

    Endpoints: `list`, `get`, `signed_url`, `outbound_call`, `sip_outbound_call`, `agent_ws`,
    `monitor_ws`, `other`.
    """

    _records: list[RequestRecord] = field(default_factory=list)
    _counts: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def add(
        self, method: str, path: str, params: Sequence[tuple[str, str]], endpoint: str
    ) -> RequestRecord:
        """Record one request; its `RequestRecord` (the status is set once answered)."""
        with self._lock:
            record = RequestRecord(next(self._numbers), method, path, list(params), endpoint)
            self._records.append(record)
            self._counts[endpoint] += 1
        return record

    def count(self, endpoint: str) -> int:
        """Requests to `endpoint` since the last `reset()`."""
        return self._counts[endpoint]

    @property
    def total(self) -> int:
        """Requests to every endpoint since the last `reset()`."""
        return self._counts.total()

    def counts(self) -> dict[str, int]:
        """Requests per endpoint since the last `reset()`."""
        return dict(self._counts)

    def reset(self) -> None:
        """Forget the log and the counts (request numbers keep growing, so ids stay unique)."""
        with self._lock:
            self._records.clear()
            self._counts.clear()

    def of(self, endpoint: str) -> list[RequestRecord]:
        """The logged requests to `endpoint`, in order."""
        return [r for r in self._records if r.endpoint == endpoint]

    @overload
    def __getitem__(self, index: int) -> RequestRecord: ...
    @overload
    def __getitem__(self, index: slice) -> list[RequestRecord]: ...
    def __getitem__(self, index: int | slice) -> RequestRecord | list[RequestRecord]:
        return self._records[index]

    def __len__(self) -> int:
        return len(self._records)
