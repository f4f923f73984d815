"""Fixtures of the live fault suite: the live suite's emulator, client and key prefix, plus
misbehaving WebSocket servers on loopback (`websockets.asyncio.server`, real sockets)."""

from __future__ import annotations

from ...live.conftest import client, emulator, key_prefix, server

__all__ = ["client", "emulator", "key_prefix", "server"]
