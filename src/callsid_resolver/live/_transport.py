"""The thin I/O layer under sessions and monitor channels: websockets, kept at arm's length.

`websockets` is optional (extras `testing`, or install it yourself): it is imported when a socket
is opened, never when `callsid_resolver` is imported. Two things here go beyond a plain connect:

* websockets logs the request line and headers at DEBUG. The request line of a signed URL holds
  its `conversation_signature`, and the monitor handshake carries `xi-api-key`; the logger handed
  to websockets masks both, so turning on debug logging never leaks a credential.
* `Confirmer` turns "written to the socket" into "received by the server": no ElevenLabs message
  is acknowledged, so after a batch of writes it sends a WebSocket ping, and the pong (answered by
  the server's WebSocket layer in order, after every earlier frame) confirms the whole batch.
  A socket that drops fails every unconfirmed write instead of losing it silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ._protocol import MAX_FRAME, redact_url

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

__all__ = ["Batch", "Confirmer", "close_info", "confirmed", "open_socket", "require_websockets"]

INSTALL_HINT = "live sessions need websockets: pip install 'websockets>=13'"
MAX_MESSAGE = MAX_FRAME
logger = logging.getLogger("callsid_resolver.live")
Failure = Callable[[], BaseException]
Batch = asyncio.Future[Failure | None]

_SECRET_HEADER = re.compile(r"^(xi-api-key|authorization|cookie)\s*$", re.IGNORECASE)
_SECRET_QUERY = re.compile(r"((?:conversation_signature|token)=)[^&\s]*", re.IGNORECASE)


def require_websockets() -> Any:
    try:
        import websockets.asyncio.client
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return websockets.asyncio.client


class _RedactingLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """What websockets logs, minus signatures in request lines and secret header values."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        if args and msg == "> %s: %s" and _SECRET_HEADER.match(str(args[0])):
            args = (args[0], "***")
        text = (str(msg) % args) if args else str(msg)
        self.logger.log(level, _SECRET_QUERY.sub(r"\1***", text), **kwargs)


_ws_logger = _RedactingLogger(logging.getLogger("callsid_resolver.live.websockets"), {})


async def open_socket(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    open_timeout: float,
) -> ClientConnection:
    """Connect; the caller maps websockets' exceptions (they never hold the URL's query)."""
    client = require_websockets()
    connection: ClientConnection = await client.connect(
        url,
        additional_headers=dict(headers or {}),
        open_timeout=open_timeout,
        max_size=MAX_MESSAGE,
        logger=_ws_logger,
    )
    logger.debug("connected to %s", redact_url(url))
    return connection


def close_info(connection: ClientConnection) -> tuple[int | None, str]:
    """The close frame the server sent (code, reason), or (None, "") after a drop."""
    rcvd = connection.protocol.close_rcvd
    return (rcvd.code, rcvd.reason) if rcvd is not None else (None, "")


class Confirmer:
    """Confirms writes in batches with WebSocket pings; see the module docstring.

    `after_write()` returns the future of the batch the write joined; its result is None once
    confirmed, or a factory of the exception each waiter raises (a result rather than an exception
    set on the future: an abandoned batch then never logs "exception was never retrieved", and no
    two waiters raise one exception object). `failure(exc)` builds it when the socket drops.
    """

    def __init__(
        self,
        connection: ClientConnection,
        failure: Callable[[BaseException | None], BaseException],
    ) -> None:
        self._connection = connection
        self._failure = failure
        self._open: Batch | None = None
        self._task: asyncio.Task[None] | None = None

    def after_write(self) -> Batch:
        if self._open is None:
            self._open = asyncio.get_running_loop().create_future()
            if self._task is None or self._task.done():
                self._task = asyncio.create_task(self._run(), name="callsid-live-confirm")
        return self._open

    @property
    def idle(self) -> bool:
        return self._task is None or self._task.done()

    @property
    def pending(self) -> Batch | None:
        return self._open

    async def _run(self) -> None:
        from websockets.exceptions import ConnectionClosed

        while (batch := self._open) is not None:
            self._open = None  # later writes join the next batch: they follow this ping
            try:
                pong = await self._connection.ping()
                await pong
            except ConnectionClosed as exc:
                self._fail_all(batch, functools.partial(self._failure, exc))
                return
            except asyncio.CancelledError:
                self._fail_all(batch, functools.partial(self._failure, None))
                raise
            if not batch.done():
                batch.set_result(None)

    def _fail_all(self, batch: Batch, error: Failure) -> None:
        for future in (batch, self._open):
            if future is not None and not future.done():
                future.set_result(error)
        self._open = None

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._open is not None:
            self._fail_all(self._open, functools.partial(self._failure, None))


async def confirmed(future: Batch) -> None:
    """Wait for a batch; raise its error if it failed."""
    failure = await asyncio.shield(future)
    if failure is not None:
        raise failure()
