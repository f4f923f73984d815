"""`Target`: the call a send is for, named by its call SID, its conversation id, or both.

No I/O here. Every entry point that takes `call_sid=`/`conversation_id=` builds one `Target`
(`Target.of`), which checks the pair once; everything past it (lanes, channels, router messages,
error texts) reads the checked value and names the call with `label`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._core._callsid import validate_call_sid
from ._errors import InvalidSend

__all__ = ["Target"]


@dataclass(frozen=True, slots=True)
class Target:
    """A call SID (validated) and/or a conversation id; at least one of them is set."""

    call_sid: str | None
    conversation_id: str | None

    @classmethod
    def of(cls, *, call_sid: str | None = None, conversation_id: str | None = None) -> Target:
        """The checked target; raises `InvalidCallSid` for a call SID that is not one, and
        `InvalidSend` (both `ValueError`s) when neither id is given."""
        if call_sid is not None:
            call_sid = validate_call_sid(call_sid)
        elif conversation_id is None:
            raise InvalidSend("give call_sid or conversation_id")
        return cls(call_sid, conversation_id)

    @property
    def label(self) -> str:
        """The call as error messages name it: `call <SID>`, else `conversation <id>`."""
        if self.call_sid:
            return f"call {self.call_sid}"
        return f"conversation {self.conversation_id}"

    @property
    def lane_key(self) -> str:
        """The key of the call's ordered lane in a `Sender`: the SID, else the conversation."""
        return self.call_sid or f"conversation:{self.conversation_id}"

    @property
    def short(self) -> str:
        """The bare id, call SID first (what `SendTimeout` names)."""
        return self.call_sid or str(self.conversation_id)
