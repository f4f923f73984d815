"""The errors of sending into a live conversation, all under `SenderError`.

Their place in the one exception tree is drawn in `callsid_resolver._exceptions`, and their
public home is `callsid_resolver` (so one `except` import covers the whole library). Messages
are built from fields; none holds an API key or a signed URL's signature.
"""

from __future__ import annotations

from collections.abc import Mapping

from .._exceptions import CallSidResolverError

__all__ = [
    "CallMismatch",
    "ConfirmTimeout",
    "ConversationNotStarted",
    "ConversationOver",
    "InvalidSend",
    "MailboxFull",
    "MailboxUnavailable",
    "MonitorError",
    "MonitorPlanRequired",
    "MonitorRefused",
    "MonitorRoleMissing",
    "MonitorScopeMissing",
    "MonitorUnavailable",
    "MonitoringDisabled",
    "NotLive",
    "RouteTimeout",
    "SendTimeout",
    "SenderError",
    "SessionClosed",
    "SessionError",
    "SessionOpenFailed",
]


class SenderError(CallSidResolverError):
    """Root of the errors of `callsid_resolver.live`."""


class SessionError(SenderError):
    """Our own Agents WebSocket could not do what was asked."""


class SessionOpenFailed(SessionError):
    """The agent socket could not be opened; `status_code` is the handshake's HTTP status."""

    def __init__(self, reason: str, *, status_code: int | None = None) -> None:
        self.reason = reason
        self.status_code = status_code
        status = f" (HTTP {status_code})" if status_code is not None else ""
        super().__init__(f"could not open the agent socket{status}: {reason}")


class SessionClosed(SessionError):
    """The session is closed, or its socket dropped under a send.

    `sent` tells the two failures apart: False means the message never left this process; True
    means it was written but the socket dropped before the server confirmed it, so it may or may
    not have arrived. `code`/`reason` are the WebSocket close frame's, when there was one.
    """

    def __init__(
        self,
        conversation_id: str | None,
        *,
        code: int | None = None,
        reason: str = "",
        sent: bool = False,
    ) -> None:
        self.conversation_id = conversation_id
        self.code = code
        self.reason = reason
        self.sent = sent
        what = "sent but unconfirmed: the socket dropped" if sent else "the session is closed"
        closed = f" (close code {code}{': ' + reason if reason else ''})" if code else ""
        super().__init__(f"conversation {conversation_id or '(not started)'}: {what}{closed}")


class MonitorError(SenderError):
    """The monitoring socket of a conversation could not take a command."""


class MonitorUnavailable(MonitorError):
    """No monitoring socket: the connection failed or dropped, and the API gave no refusal."""

    def __init__(self, conversation_id: str, reason: str, *, sent: bool = False) -> None:
        self.conversation_id = conversation_id
        self.reason = reason
        self.sent = sent
        super().__init__(f"monitor of {conversation_id}: {reason}")


class MonitorRefused(MonitorError):
    """The API refused the monitoring socket.

    `refusal` is the kind (`plan`, `scope`, `monitoring_disabled`, `conversation_over`, or
    `unauthorized`/`forbidden`/`policy` when the API did not say more); `status_code` is the
    handshake's HTTP status or `close_code` the close frame's code, whichever carried the refusal.
    How the real API refuses is unconfirmed: see `callsid_resolver.live._refusals`.
    """

    refusal_kind = "refused"

    def __init__(
        self,
        conversation_id: str,
        *,
        refusal: str | None = None,
        detail: str = "",
        status_code: int | None = None,
        close_code: int | None = None,
    ) -> None:
        self.conversation_id = conversation_id
        self.refusal = refusal or self.refusal_kind
        self.detail = detail
        self.status_code = status_code
        self.close_code = close_code
        how = (
            f"HTTP {status_code}"
            if status_code is not None
            else f"close code {close_code}"
            if close_code is not None
            else "refused"
        )
        text = f": {detail}" if detail else ""
        super().__init__(f"monitor of {conversation_id} refused [{self.refusal}] ({how}){text}")


class MonitorPlanRequired(MonitorRefused):
    """Monitoring needs an Enterprise plan or the `realtime-monitoring` feature flag."""

    refusal_kind = "plan"


class MonitorScopeMissing(MonitorRefused):
    """The API key lacks the `CONVAI_WRITE` ("ElevenLabs Agents Write") scope."""

    refusal_kind = "scope"


class MonitorRoleMissing(MonitorRefused):
    """The key's user lacks EDITOR access to the agent's workspace."""

    refusal_kind = "role"


class MonitoringDisabled(MonitorRefused):
    """The agent has `conversation_config.conversation.monitoring_enabled` off."""

    refusal_kind = "monitoring_disabled"


class ConversationNotStarted(MonitorRefused):
    """The conversation has not begun (`initiated`): it cannot be monitored yet; retry later."""

    refusal_kind = "not_started"


class ConversationOver(MonitorRefused):
    """The conversation is over: it ended (`done`, `failed`, `processing`), or never was.

    The monitor raises it when the API refuses a finished conversation; a `Sender` raises it on
    every channel once it knows the call is over, so nothing is left in a mailbox nobody reads.
    `status` is the conversation's status when a GET told it.
    """

    refusal_kind = "conversation_over"

    def __init__(
        self,
        conversation_id: str,
        *,
        refusal: str | None = None,
        detail: str = "",
        status_code: int | None = None,
        close_code: int | None = None,
        status: str | None = None,
    ) -> None:
        self.status = status
        super().__init__(
            conversation_id,
            refusal=refusal,
            detail=detail,
            status_code=status_code,
            close_code=close_code,
        )


class InvalidSend(SenderError, ValueError):
    """A send's arguments cannot be used (no target, an unknown channel); nothing was sent."""


class CallMismatch(InvalidSend):
    """`call_sid` and `conversation_id` were both given and name different calls."""

    def __init__(self, call_sid: str, conversation_id: str, actual: str) -> None:
        self.call_sid = call_sid
        self.conversation_id = conversation_id
        self.actual = actual
        super().__init__(
            f"call {call_sid} is conversation {actual}, not {conversation_id}; nothing was sent"
        )


class MailboxFull(SenderError):
    """The call's mailbox already holds `max_items`; the new item was refused, nothing dropped."""

    def __init__(self, call_sid: str, max_items: int) -> None:
        self.call_sid = call_sid
        self.max_items = max_items
        super().__init__(f"mailbox of call {call_sid} is full ({max_items} items waiting)")


class SendTimeout(SenderError):
    """The conversation's send queue stayed full for `timeout` seconds; the message was not sent."""

    def __init__(self, target: str, *, timeout: float, queue_size: int) -> None:
        self.target = target
        self.timeout = timeout
        self.queue_size = queue_size
        super().__init__(
            f"no room in the send queue of {target} within {timeout:g} s "
            f"({queue_size} messages waiting); the message was not sent"
        )


class NotLive(SenderError):
    """No channel could deliver the message; `reasons` says why, channel by channel.

    `errors` holds the underlying exception per channel where there was one.
    """

    def __init__(
        self,
        kind: str,
        target: str,
        reasons: Mapping[str, str],
        errors: Mapping[str, BaseException] | None = None,
    ) -> None:
        self.kind = kind
        self.target = target
        self.reasons = dict(reasons)
        self.errors = dict(errors or {})
        why = "; ".join(f"{channel}: {reason}" for channel, reason in self.reasons.items())
        super().__init__(f"could not deliver {kind} to {target}: {why}")


class RouteTimeout(SenderError):
    """A message went to the worker holding the call's session, which did not acknowledge it in
    `timeout` seconds (it froze, or lost Redis). The message may or may not have arrived."""

    def __init__(self, target: str, *, worker: str, timeout: float) -> None:
        self.target = target
        self.worker = worker
        self.timeout = timeout
        super().__init__(
            f"{target}: worker {worker} holds the session but did not acknowledge within "
            f"{timeout:g} s; the message may or may not have arrived"
        )


class ConfirmTimeout(SenderError):
    """A message was written to `target`'s socket, but the server did not confirm it within
    `timeout` seconds (it stopped reading). It may or may not have arrived (`sent` is True), so
    no other channel is tried: that could deliver it twice."""

    sent = True

    def __init__(self, target: str, *, channel: str, timeout: float) -> None:
        self.target = target
        self.channel = channel
        self.timeout = timeout
        super().__init__(
            f"{target}: written to the {channel} socket but not confirmed within {timeout:g} s; "
            "the message may or may not have arrived"
        )


class MailboxUnavailable(SenderError):
    """The mailbox's store failed (`operation` on call `call_sid`): nothing was posted, or for a
    drain nothing was removed. `reason` names the store's error class only: a Redis error's text
    can hold the server's address or a password from the URL."""

    def __init__(self, call_sid: str, operation: str, reason: str) -> None:
        self.call_sid = call_sid
        self.operation = operation
        self.reason = reason
        super().__init__(f"mailbox of call {call_sid} unavailable ({operation}): {reason}")
