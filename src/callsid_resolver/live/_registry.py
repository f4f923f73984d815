"""`SessionRegistry`: this process's open sessions, found by call SID or conversation id.

A custom Twilio bridge learns the call SID from the Media Streams `start` event and the
conversation id from `conversation_initiation_metadata`: registering the session records that
mapping with the resolver for free (docs/protocol.md §11.2), and the `Sender` finds the session
by either id. A session leaves the registry by itself when it closes. Listeners (the fleet's
`RedisRouter`) hear of every call that arrives or leaves, so other workers can reach it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from .._core._callsid import validate_call_sid
from ._errors import SessionClosed

if TYPE_CHECKING:
    from .._async.resolver import AsyncCallSidResolver
    from ._session import ConversationSession

__all__ = ["RegistryListener", "SessionRegistry"]

logger = logging.getLogger("callsid_resolver.live")


class RegistryListener(Protocol):
    """Told of each call that gets a session in the registry, and of each that loses it."""

    async def session_registered(self, call_sid: str, conversation_id: str) -> None:
        """Called when a session is registered for `call_sid`."""
        ...

    def session_dropped(self, call_sid: str, conversation_id: str) -> None:
        """Called when the session of `call_sid` closes or is unregistered."""
        ...


class SessionRegistry:
    """Open `ConversationSession`s by call SID and by conversation id (one event loop).

    With a `resolver`, `register` primes it (`resolver.remember`), so resolving this call SID
    anywhere that shares the resolver's cache costs no request.
    """

    def __init__(self, resolver: AsyncCallSidResolver | None = None) -> None:
        self.resolver = resolver
        self._by_sid: dict[str, ConversationSession] = {}
        self._by_conversation: dict[str, ConversationSession] = {}
        self._sid_of: dict[int, str] = {}
        self._listeners: list[RegistryListener] = []

    def __repr__(self) -> str:
        return f"<SessionRegistry sessions={len(self)}>"

    def __len__(self) -> int:
        return len(self._by_conversation)

    async def register(
        self, session: ConversationSession, *, call_sid: str, agent_id: str | None = None
    ) -> None:
        """Index an open session under `call_sid` (its conversation id is known once open).

        A call SID registered again moves to the new session (a bridge that reconnected).
        """
        sid = validate_call_sid(call_sid)
        conversation_id = session.conversation_id
        if session.closed or conversation_id is None:
            raise SessionClosed(conversation_id)
        previous = self._by_sid.get(sid)
        if previous is not None and previous is not session:
            self._drop(previous)
        self._by_sid[sid] = session
        self._by_conversation[conversation_id] = session
        self._sid_of[id(session)] = sid
        session.add_close_callback(self._drop)
        if self.resolver is not None:
            try:
                await self.resolver.remember(
                    sid, conversation_id, agent_id=agent_id or session.agent_id
                )
            except Exception as exc:
                # Priming saves later lookups; a cache outage must not unregister a live call.
                logger.warning("could not prime the resolver for %s: %s", sid, exc)
        for listener in self._listeners:
            try:
                await listener.session_registered(sid, conversation_id)
            except Exception as exc:  # same reasoning: the call is live here whatever Redis says
                logger.warning("could not announce the session of %s: %s", sid, exc)

    def unregister(self, session: ConversationSession) -> None:
        """Forget `session` (its listeners hear `session_dropped`)."""
        self._drop(session)

    def get(
        self, *, call_sid: str | None = None, conversation_id: str | None = None
    ) -> ConversationSession | None:
        """The open session of this call (by SID first, then by conversation id), or None."""
        session = None
        if call_sid is not None:
            session = self._by_sid.get(call_sid)
        if session is None and conversation_id is not None:
            session = self._by_conversation.get(conversation_id)
        return session if session is not None and not session.closed else None

    def call_sid_of(self, conversation_id: str) -> str | None:
        """The call SID a conversation's session was registered under, or None."""
        session = self._by_conversation.get(conversation_id)
        return self._sid_of.get(id(session)) if session is not None else None

    def sessions(self) -> list[ConversationSession]:
        """The sessions registered now."""
        return list(self._by_conversation.values())

    def calls(self) -> dict[str, str]:
        """Call SID → conversation id of every open session registered under a call SID."""
        return {
            sid: session.conversation_id
            for sid, session in self._by_sid.items()
            if session.conversation_id is not None and not session.closed
        }

    def add_listener(self, listener: RegistryListener) -> None:
        """Tell `listener` about every registration and drop from now on."""
        self._listeners.append(listener)

    def remove_listener(self, listener: RegistryListener) -> None:
        """Stop telling `listener` (no error if it was not added)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _drop(self, session: ConversationSession) -> None:
        sid = self._sid_of.pop(id(session), None)
        if sid is not None and self._by_sid.get(sid) is session:
            del self._by_sid[sid]
        cid = session.conversation_id
        if cid is not None and self._by_conversation.get(cid) is session:
            del self._by_conversation[cid]
        if sid is not None and cid is not None:
            for listener in self._listeners:
                listener.session_dropped(sid, cid)
