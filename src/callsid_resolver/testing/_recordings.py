"""Recordings: scenarios of real-shaped conversations, bundled with the package or on disk.

Format (version 1), one JSON file per scenario (bundled ones in `recordings/`, described in
`recordings/README.md`):

    {"format": 1, "description": "...", "conversations": [<GET /v1/convai/conversations/{id}>, ...]}

Each conversation is the full object the API returns for one id; the emulator derives the list
rows from it. Ids are fake or scrubbed, phone numbers `+1555…`, no key or signature anywhere.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["FORMAT", "list_recordings", "load_recording", "load_recording_file", "parse_recording"]

FORMAT = 1


def list_recordings() -> list[str]:
    """Names of the bundled recordings."""
    folder = resources.files(__package__).joinpath("recordings")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def load_recording(name: str) -> list[dict[str, Any]]:
    """The conversations of a bundled recording (a name from `list_recordings()`)."""
    if name not in list_recordings():
        raise LookupError(f"no recording {name!r}; bundled: {', '.join(list_recordings())}")
    text = resources.files(__package__).joinpath("recordings").joinpath(f"{name}.json").read_text()
    return parse_recording(text, name)


def load_recording_file(path: str | Path) -> list[dict[str, Any]]:
    """The conversations of a recording file (e.g. one written by `record_conversations`)."""
    return parse_recording(Path(path).read_text(encoding="utf-8"), str(path))


def parse_recording(text: str, name: str = "recording") -> list[dict[str, Any]]:
    document = json.loads(text)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise ValueError(f"{name} has format {found!r}, not {FORMAT}")
    conversations: list[dict[str, Any]] = document["conversations"]
    return conversations
