"""The emulator in another process: for load tests and benchmarks, where a server sharing the
test's interpreter (and its GIL) would measure itself instead of the client."""

from __future__ import annotations

import subprocess
import sys
from types import TracebackType
from typing import Any

import httpx
from typing_extensions import Self

from ._profile import (
    EmulatorProfile,
    ProfileLike,
    load_profile,
    profile_document,
    profile_from_document,
)
from ._settings import REMOTE, check_profile

__all__ = ["EmulatorProcess", "RemoteEmulator"]


class RemoteEmulator:
    """Counters and knobs of an emulator served elsewhere, with `Emulator`'s names.

    Setting a knob (`remote.latency = 0.05`, `remote.profile = "observed"`) sets it on the
    served emulator; a name that is not a knob is an `AttributeError`, not a local attribute
    that would silently change nothing, and a bad value is a `ValueError` naming the knob.
    """

    _OWN = ("base_url", "_http", "profile")
    base_url: str
    _http: httpx.Client

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._http = httpx.Client(base_url=base_url, timeout=10)

    def count(self, endpoint: str) -> int:
        """Requests to `endpoint` since the last `reset_counts()`."""
        return int(self._counts().get(endpoint, 0))

    @property
    def total_requests(self) -> int:
        """Requests to every endpoint since the last `reset_counts()`."""
        return sum(self._counts().values())

    def reset_counts(self) -> None:
        """Start counting requests from zero."""
        self._http.post("/_emulator/reset").raise_for_status()

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Set knobs (latency, filter_mode, rate_limit_every, retry_after, monitor_refusal,
        profile, ...); returns every knob's value. A profile may be given as a name, a profile
        file (read here), an `EmulatorProfile` or a parsed profile file.

        Raises:
            ValueError: the emulator refused a setting (the message names it).
        """
        if "profile" in settings and not isinstance(settings["profile"], dict):
            try:  # read here: a file on this side may not exist on the emulator's
                settings["profile"] = profile_document(check_profile(settings["profile"]))
            except ValueError as exc:
                raise ValueError(f"the emulator refused a setting: profile: {exc}") from None
        response = self._http.post("/_emulator/settings", json=settings)
        if response.status_code == 422:
            raise ValueError(f"the emulator refused a setting: {response.json()['detail']}")
        response.raise_for_status()
        current: dict[str, Any] = response.json()
        return current

    @property
    def profile(self) -> EmulatorProfile:
        """The served emulator's profile."""
        return profile_from_document(self.configure()["profile"], source=self.base_url)

    @profile.setter
    def profile(self, value: ProfileLike) -> None:
        self.configure(profile=value)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._OWN:
            super().__setattr__(name, value)  # `profile` goes through its property
        elif name in REMOTE:
            self.configure(**{name: value})
        else:
            raise AttributeError(f"{name!r} is not a setting of the emulator; see {REMOTE}")

    def _counts(self) -> dict[str, int]:
        response = self._http.get("/_emulator/counts")
        response.raise_for_status()
        counts: dict[str, int] = response.json()["counts"]
        return counts

    def close(self) -> None:
        """Close the connection to the control endpoint."""
        self._http.close()


class EmulatorProcess:
    """`callsid-resolver emulator` in a child process on a free loopback port.

    ```python
    with EmulatorProcess(synthetic=10_000, seed=1) as emulator:
        client = ElevenLabsClient("key", base_url=emulator.base_url)
        emulator.remote.latency = 0.05
    ```
    """

    def __init__(
        self,
        *,
        recording: str = "none",
        synthetic: int = 0,
        seed: int = 0,
        profile: ProfileLike = "documented",
    ) -> None:
        self._args = [
            sys.executable, "-m", "callsid_resolver", "emulator", "--port", "0",
            "--recording", recording, "--synthetic", str(synthetic), "--seed", str(seed),
        ]  # fmt: skip
        self._profile = load_profile(profile)
        self._process: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.remote: RemoteEmulator

    def __enter__(self) -> Self:
        # Our own interpreter and fixed arguments: nothing untrusted reaches the command line.
        self._process = subprocess.Popen(self._args, stderr=subprocess.PIPE, text=True)  # noqa: S603
        assert self._process.stderr is not None
        line = self._process.stderr.readline()  # "ElevenLabs emulator on http://...:PORT (...)"
        if " on http" not in line:
            self._process.kill()
            raise RuntimeError(f"the emulator did not start: {line.strip()}")
        self.base_url = line.split(" on ", 1)[1].split()[0]
        self.remote = RemoteEmulator(self.base_url)
        self.remote.profile = self._profile
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remote.close()
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            if self._process.stderr is not None:
                self._process.stderr.close()
