"""`callsid-resolver doctor`: measure what a real ElevenLabs workspace does, read-only.

Several facts the library depends on are unconfirmed or reported only by third parties (the
assumptions of `docs/protocol.md` §2, §3, §10 and §12). The doctor measures each one with the
user's own key, through the library's own `ElevenLabsClient` (its retries, deadlines and redaction
apply), and reports them as a table, as what the library will do as a result, and as an emulator
profile file that `callsid_resolver.testing.load_profile` reads.

It only ever reads: its HTTP client refuses any method but GET before a byte is sent, and the
monitoring socket, when asked for with `--monitor`, is opened, read once and closed, with nothing
sent on it. Nothing it prints or writes holds the API key, a signed URL's token, a phone number
or a whole call id (a SIP Call-ID can embed a phone number).

Modules: `_probe` (options, findings, the client), `_diagnose` (the order of checks and those
needing no conversation), `_calls` (the checks that read conversations), `_monitor` (`--monitor`),
`_report` (table, consequences, profile file, the subcommand).
"""

from ._diagnose import diagnose
from ._probe import Check, Diagnosis, DoctorOptions
from ._report import add_arguments, consequences, profile_document, render, run

__all__ = [
    "Check",
    "Diagnosis",
    "DoctorOptions",
    "add_arguments",
    "consequences",
    "diagnose",
    "profile_document",
    "render",
    "run",
]
