"""The emulator in another process: for load tests and benchmarks, where a server sharing the
test's interpreter (and its GIL) would measure itself instead of the client."""

from __future__ import annotations

import subprocess
import sys
from types import TracebackType
from typing import Any

import httpx
from typing_extensions import Self


class RemoteEmulator:
    """Counters and knobs of an emulator served elsewhere, with `Emulator`'s names."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._http = httpx.Client(base_url=base_url, timeout=10)

    def count(self, endpoint: str) -> int:
        return int(self._counts().get(endpoint, 0))

    @property
    def total_requests(self) -> int:
        return sum(self._counts().values())

    def reset_counts(self) -> None:
        self._http.post("/_emulator/reset").raise_for_status()

    def configure(self, **settings: Any) -> None:
        """Set knobs: latency, filter_mode, rate_limit_every, retry_after, monitor_refusal, ..."""
        self._http.post("/_emulator/settings", json=settings).raise_for_status()

    def __setattr__(self, name: str, value: Any) -> None:
        from ._emulator import SETTINGS

        if name in SETTINGS:
            self.configure(**{name: value})
        else:
            super().__setattr__(name, value)

    def _counts(self) -> dict[str, int]:
        response = self._http.get("/_emulator/counts")
        response.raise_for_status()
        counts: dict[str, int] = response.json()["counts"]
        return counts

    def close(self) -> None:
        self._http.close()


class EmulatorProcess:
    """`callsid-resolver emulator` in a child process on a free loopback port.

    ```python
    with EmulatorProcess(synthetic=10_000, seed=1) as emulator:
        client = ElevenLabsClient("key", base_url=emulator.base_url)
        emulator.remote.latency = 0.05
    ```
    """

    def __init__(self, *, recording: str = "none", synthetic: int = 0, seed: int = 0) -> None:
        self._args = [
            sys.executable, "-m", "callsid_resolver", "emulator", "--port", "0",
            "--recording", recording, "--synthetic", str(synthetic), "--seed", str(seed),
        ]  # fmt: skip
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
