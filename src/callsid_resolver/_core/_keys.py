"""Every key the library writes to a cache or to Redis, under one namespace.

Cache entries are versioned (`v1`), so a change of the stored shape never reads an old one;
router routes, worker channels, mailboxes and webhook marks hold no stored model and are not.
The id in braces is a Redis Cluster hash tag: a SID's entry, its lock, its route and its mailbox
each land in the slot of that id, and every family spreads over the cluster by id, never by
namespace (see docs/caching.md, "Redis Cluster").
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_NAMESPACE", "SCHEMA_VERSION", "Keys", "millis"]

SCHEMA_VERSION = 1
DEFAULT_NAMESPACE = "callsid-resolver"


def millis(seconds: float) -> int:
    """`seconds` as whole milliseconds for Redis `PX`/`PEXPIRE`, never below 1 (0 is refused)."""
    return max(1, int(seconds * 1000))


@dataclass(frozen=True, slots=True)
class Keys:
    """The key scheme of one namespace; one namespace per ElevenLabs workspace is wise."""

    namespace: str = DEFAULT_NAMESPACE

    def __post_init__(self) -> None:
        if not self.namespace or any(c.isspace() or c in "{}" for c in self.namespace):
            raise ValueError("namespace must be non-empty, without spaces or braces")

    def sid(self, call_sid: str) -> str:
        """The cache key of `call_sid`'s mapping."""
        return f"{self.namespace}:v{SCHEMA_VERSION}:sid:{{{call_sid}}}"

    def conversation(self, conversation_id: str) -> str:
        """The cache key of a conversation's mapping."""
        return f"{self.namespace}:v{SCHEMA_VERSION}:conv:{{{conversation_id}}}"

    def lock(self, call_sid: str) -> str:
        """The lock that lets one process of a fleet resolve `call_sid` at a time."""
        return f"{self.namespace}:v{SCHEMA_VERSION}:lock:{{{call_sid}}}"

    def route_sid(self, call_sid: str) -> str:
        """The router's record of which worker holds the session of `call_sid`."""
        return f"{self.namespace}:route:sid:{{{call_sid}}}"

    def route_conversation(self, conversation_id: str) -> str:
        """The router's record of which worker holds a conversation's session."""
        return f"{self.namespace}:route:conv:{{{conversation_id}}}"

    @property
    def worker_channel_prefix(self) -> str:
        """What every router worker's pub/sub channel starts with (the routing script adds the
        worker id)."""
        return f"{self.namespace}:route:worker:"

    def worker_channel(self, worker_id: str) -> str:
        """The pub/sub channel a router worker listens on."""
        return self.worker_channel_prefix + worker_id

    def mailbox(self, call_sid: str) -> str:
        """The list that holds the items posted for `call_sid`."""
        return f"{self.namespace}:mailbox:{{{call_sid}}}"

    def webhook_delivery(self, delivery_key: str) -> str:
        """The mark that says a webhook delivery was seen."""
        return f"{self.namespace}:webhook:{{{delivery_key}}}"
