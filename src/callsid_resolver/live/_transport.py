"""The thin I/O layer under sessions and monitor channels: websockets, kept at arm's length.

`websockets` is optional (extras `testing`, or install it yourself): it is imported when a socket
is opened, never when `callsid_resolver` is imported. What goes beyond a plain connect:

* websockets logs the request line and headers at DEBUG. The request line of a signed URL holds
  its `conversation_signature`, and the monitor handshake carries `xi-api-key`; the logger handed
  to websockets shows a header or query value only when its name is on an allowlist, so turning
  on debug logging never leaks a credential.
* A redirect to another origin is not followed: websockets would send `xi-api-key` along.
* `Confirmer` turns "written to the socket" into "received by the server": no ElevenLabs message
  is acknowledged, so after a batch of writes it sends a WebSocket ping, and the pong (answered by
  the server's WebSocket layer in order, after every earlier frame) confirms the whole batch.
  A socket that drops fails every unconfirmed write instead of losing it silently, and one whose
  peer stopped reading is dropped within the confirmation timeout, as is a write stuck behind a
  full buffer within `WRITE_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus, urlsplit

from ._errors import SessionOpenFailed
from ._protocol import MAX_FRAME, SHOWN_PARAMS, redact_url

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

__all__ = [
    "Batch",
    "Confirmer",
    "bounded",
    "close_info",
    "closed_text",
    "confirmed",
    "open_failure",
    "open_socket",
    "redact_text",
    "require_websockets",
]

INSTALL_HINT = "live sessions need websockets: pip install 'websockets>=13'"
MAX_MESSAGE = MAX_FRAME
# Sender's default send_timeout: a written message is confirmed, or failed, within it.
DEFAULT_CONFIRM_TIMEOUT = 10.0
# A write still waiting for the peer to read (its buffer full) after this long drops the socket:
# websockets' keepalive cannot tell, as its own ping waits behind the same full buffer.
WRITE_TIMEOUT = DEFAULT_CONFIRM_TIMEOUT
logger = logging.getLogger("callsid_resolver.live")
Failure = Callable[[], BaseException]
Batch = asyncio.Future[Failure | None]

# An allowlist, like `redact_url`'s: a header or query value is logged only when its name is
# known to be harmless. A blocklist missed `signature=`, `sig=`, `xi_api_key=` and
# `conversation%5Fsignature=`; whatever the API or a proxy adds next is masked by default.
_SHOWN_HEADERS = frozenset(
    {
        "host", "upgrade", "connection", "user-agent", "server", "date", "content-type",
        "content-length", "sec-websocket-version", "sec-websocket-extensions",
        "sec-websocket-protocol", "sec-websocket-accept", "location",
    }
)  # fmt: skip
# Only the separators of a request line end a name or value: `\s` would also stop at control
# characters, and a value after a name holding one would go out in clear.
_QUERY_VALUE = re.compile(r"([?&;])([^=&;#? \t\r\n]*)=([^&;# \t\r\n]*)")
_HEADER_LINE = frozenset({"> %s: %s", "< %s: %s"})


def redact_text(text: str) -> str:
    """`text` with every URL query value masked unless `redact_url` would show it."""
    return _QUERY_VALUE.sub(_masked_query, text)


def _masked_query(match: re.Match[str]) -> str:
    sep, name, value = match.groups()
    shown = unquote_plus(name).lower() in SHOWN_PARAMS
    return f"{sep}{name}={value if shown else '***'}"


def require_websockets() -> Any:
    try:
        import websockets.asyncio.client
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return websockets.asyncio.client


class _RedactingLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """What websockets logs, with header values shown only for harmless header names and
    query values only for harmless parameter names (request lines, `Location`, any text)."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        if msg in _HEADER_LINE and len(args) == 2 and str(args[0]).lower() not in _SHOWN_HEADERS:
            args = (args[0], "***")
        text = (str(msg) % args) if args else str(msg)
        self.logger.log(level, redact_text(text), **kwargs)


_ws_logger = _RedactingLogger(logging.getLogger("callsid_resolver.live.websockets"), {})


async def open_socket(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    open_timeout: float,
) -> ClientConnection:
    """Connect; the caller maps websockets' exceptions (they never hold the URL's query).

    Redirects are followed within the same origin only. websockets drops `Authorization`,
    `Cookie` and `Proxy-Authorization` on a cross-origin redirect but sends every other header
    on, `xi-api-key` included; so a cross-origin redirect is not followed and the caller gets the
    3xx as an `InvalidStatus`, like any other refused handshake.
    """
    client = require_websockets()
    connect = _same_origin_connect(client.connect)
    connection: ClientConnection = await connect(
        url,
        additional_headers=dict(headers or {}),
        open_timeout=open_timeout,
        max_size=MAX_MESSAGE,
        logger=_ws_logger,
        create_connection=_bounded_writes(client.ClientConnection),
    )
    logger.debug("connected to %s", redact_url(url))
    return connection


@functools.cache
def _same_origin_connect(connect: type[Any]) -> type[Any]:
    if not hasattr(connect, "process_redirect"):
        return connect  # websockets < 14 follows no redirect at all

    class SameOriginConnect(connect):  # type: ignore[misc]
        def process_redirect(self, exc: Exception) -> Exception | str:
            followed: Exception | str = super().process_redirect(exc)
            if isinstance(followed, str) and _origin(followed) != _origin(self.uri):
                logger.warning(
                    "not following a redirect to another origin (%s) with credentials",
                    redact_url(followed),
                )
                return exc
            return followed

    return SameOriginConnect


@functools.cache
def _bounded_writes(connection: type[Any]) -> type[Any]:
    class BoundedWrites(connection):  # type: ignore[misc]
        """A connection whose `send` drops the socket after `WRITE_TIMEOUT` s stuck in a write.

        A timer rather than `wait_for`: the write stays in the caller's task, so writes still
        leave in call order. The aborted write raises `ConnectionClosedError` (websockets would
        let it return as if written).
        """

        async def send(self, *args: Any, **kwargs: Any) -> None:
            from websockets.exceptions import ConnectionClosedError

            stuck: list[bool] = []
            timer = asyncio.get_running_loop().call_later(WRITE_TIMEOUT, self._stuck, stuck)
            try:
                await super().send(*args, **kwargs)
            finally:
                timer.cancel()
            if stuck:
                raise ConnectionClosedError(None, None)

        def _stuck(self, stuck: list[bool]) -> None:
            stuck.append(True)
            logger.warning("the peer read nothing for %g s: dropping the socket", WRITE_TIMEOUT)
            self.transport.abort()

    return BoundedWrites


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"ws": 80, "wss": 443, "http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


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

    A pong that does not come within `timeout` seconds (a server that stopped reading: its
    pong queues behind our unread frames) fails the batch and every later one with
    `failure(TimeoutError)` and aborts the connection, as websockets' own keepalive does after
    its ping timeout, but within the timeout instead of after 20 s + 20 s of keepalive.
    """

    def __init__(
        self,
        connection: ClientConnection,
        failure: Callable[[BaseException | None], BaseException],
        *,
        timeout: float = DEFAULT_CONFIRM_TIMEOUT,
    ) -> None:
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        self._connection = connection
        self._failure = failure
        self.timeout = timeout
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
                # The ping's own write is bounded too: with the peer not reading, the send
                # buffer fills and the write waits for a drain that never comes.
                await asyncio.wait_for(self._ping(), self.timeout)
            except ConnectionClosed as exc:
                self._fail_all(batch, functools.partial(self._failure, exc))
                return
            except asyncio.TimeoutError:
                error = TimeoutError(f"no pong within {self.timeout:g} s")
                self._fail_all(batch, functools.partial(self._failure, error))
                self._connection.transport.abort()  # dead to us: the reader sees the drop
                return
            except asyncio.CancelledError:
                self._fail_all(batch, functools.partial(self._failure, None))
                raise
            if not batch.done():
                batch.set_result(None)

    async def _ping(self) -> None:
        pong = await self._connection.ping()
        await pong

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


def bounded(batch: Batch, timeout: float, failure: Failure) -> Batch:
    """A batch that settles as `batch` does, or with `failure` after `timeout` seconds.

    `Sender` bounds each confirmation by its `send_timeout` with this; the socket's `Confirmer`
    keeps its own (longer or equal) timeout and is what ends a connection that stopped reading.
    """
    loop = asyncio.get_running_loop()
    result: Batch = loop.create_future()

    def settle(outcome: Failure | None) -> None:
        if not result.done():
            result.set_result(outcome)

    timer = loop.call_later(timeout, settle, failure)

    def follow(done: Batch) -> None:
        timer.cancel()
        if done.cancelled():
            result.cancel()
        else:
            settle(done.result())

    batch.add_done_callback(follow)
    return result


def closed_text(code: int | None, reason: str) -> str:
    """Why a session's socket closed before the conversation started, for `SessionOpenFailed`."""
    if code is None:
        return "the connection dropped before the conversation started"
    return f"closed with code {code}" + (f": {reason}" if reason else "")


def open_failure(exc: Exception, url: str) -> SessionOpenFailed:
    """websockets' error opening a session as ours; only the redacted URL may appear in it."""
    try:
        from websockets.exceptions import InvalidStatus, InvalidURI
    except ImportError:
        return SessionOpenFailed(INSTALL_HINT)
    if isinstance(exc, ImportError):
        return SessionOpenFailed(INSTALL_HINT)
    if isinstance(exc, InvalidStatus):
        return SessionOpenFailed("handshake refused", status_code=exc.response.status_code)
    if isinstance(exc, InvalidURI):
        return SessionOpenFailed(f"invalid URL {redact_url(url)}")
    if isinstance(exc, TimeoutError):
        return SessionOpenFailed("timed out opening the socket")
    return SessionOpenFailed(f"{type(exc).__name__}: {exc}")
