"""`callsid-resolver emulator`: build the emulator the flags describe, say what it serves, serve it.

Kept apart from `cli` because it needs the `testing` extra; `cli` imports it only for this command.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
from pathlib import Path
from typing import Any, TextIO

from ._cli_support import UsageError, profile_argument
from .testing import Emulator, EmulatorServer, synthetic_conversations
from .testing._recordings import list_recordings, load_recording_file

__all__ = ["LIVE_STATUSES", "SHOWN_LIVE_CALLS", "build_emulator", "describe", "serve"]

LIVE_STATUSES = ("initiated", "in-progress")
SHOWN_LIVE_CALLS = 5


def build_emulator(args: argparse.Namespace) -> Emulator:
    """An `Emulator` from `--recording`, `--synthetic`, `--api-key`, `--profile`, `--latency` and
    `--filter-mode`; bad values are a `UsageError` naming the flag."""
    profile = profile_argument(args.profile or "documented")
    emulator = Emulator(_recording(args.recording), api_key=args.api_key, profile=profile)
    for conversation in synthetic_conversations(args.synthetic, seed=args.seed):
        emulator.add_conversation(conversation)
    emulator.latency = args.latency
    if args.filter_mode is not None:
        emulator.filter_mode = args.filter_mode
    return emulator


def _recording(value: str) -> list[dict[str, Any]]:
    """The conversations of a bundled recording, a recording file, or none."""
    from .testing import load_recording

    if value == "none":
        return []
    if value in list_recordings():
        return load_recording(value)
    path = Path(value)
    if not path.is_file():
        raise UsageError(
            f"--recording {value!r} is neither a bundled recording "
            f"({', '.join(list_recordings())}, none) nor a file"
        )
    try:
        return load_recording_file(path)
    except (ValueError, KeyError, TypeError) as exc:
        reason = f"not JSON ({exc})" if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise UsageError(
            f"--recording {value}: {reason}; give a file written by 'callsid-resolver record'"
        ) from None


def serve(emulator: Emulator, args: argparse.Namespace, *, out: TextIO) -> int:
    """Serve until Ctrl-C, after telling `out` what is served; a busy port is a `UsageError`."""
    try:
        server = EmulatorServer(emulator, host=args.host, port=args.port).start()
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise UsageError(
            f"cannot listen on {args.host}:{args.port}: {reason}; choose another "
            "--port (0 picks a free one)"
        ) from None
    try:
        # The first line is a contract: `EmulatorProcess` reads the URL from it.
        print(f"ElevenLabs emulator on {server.base_url} (Ctrl-C stops it)", file=out)
        for line in describe(emulator, args, port=server.port):
            print(f"  {line}", file=out)
        if not _is_loopback(args.host):
            print(_exposed_warning(args), file=out)
        out.flush()
        server.wait()
    finally:
        server.stop()
    return 0


def describe(emulator: Emulator, args: argparse.Namespace, *, port: int) -> list[str]:
    """What a user needs to point a client at the emulator: data, live call SIDs, key rule."""
    conversations = emulator.conversations()
    source = "no recording" if args.recording == "none" else f"recording {args.recording}"
    data = f"{source}, {len(conversations)} conversation(s)"
    if args.synthetic:
        data += f" including {args.synthetic} generated (seed {args.seed})"
    live = [
        sid
        for c in conversations
        if c.get("status") in LIVE_STATUSES
        and (sid := ((c.get("metadata") or {}).get("phone_call") or {}).get("call_sid"))
    ]
    shown = ", ".join(live[:SHOWN_LIVE_CALLS]) or "none"
    if len(live) > SHOWN_LIVE_CALLS:
        shown += f" and {len(live) - SHOWN_LIVE_CALLS} more"
    key = "any non-empty xi-api-key" if emulator.api_key is None else "only the --api-key key"
    profile = emulator.profile.name
    lines = [
        data,
        f"live calls: {shown}",
        f"key: {key}",
        f"profile: {profile}; filter mode: {emulator.filter_mode}; latency: {emulator.latency:g} s",
    ]
    if live:
        key_value = "any-key" if emulator.api_key is None else "..."
        url = f"http://{_url_host(args.host)}:{port}"
        lines += [
            f"try: export ELEVENLABS_BASE_URL={url}",
            f"     export ELEVENLABS_API_KEY={key_value}",
            f"     callsid-resolver resolve {live[0]}",
        ]
    return lines


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - what a client on this machine dials
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _exposed_warning(args: argparse.Namespace) -> str:
    if args.api_key is None:
        return (
            f"warning: listening on {args.host}, beyond this machine, and ANY non-empty key is "
            "accepted: pass --api-key KEY to require one, or keep --host 127.0.0.1"
        )
    return f"warning: listening on {args.host}, reachable beyond this machine"
