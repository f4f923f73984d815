"""Recordings: scenarios of real-shaped conversations bundled with the package.

Format (version 1), one JSON file per scenario in `recordings/`:

    {"format": 1, "description": "...", "conversations": [<GET /v1/convai/conversations/{id}>, ...]}

Each conversation is the full object the API returns for one id; the emulator derives the list
rows from it. Ids are fake, phone numbers `+1555…`, no key or signature anywhere.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

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
    document = json.loads(text)
    if document.get("format") != FORMAT:
        raise ValueError(f"recording {name!r} has format {document.get('format')!r}, not {FORMAT}")
    conversations: list[dict[str, Any]] = document["conversations"]
    return conversations
