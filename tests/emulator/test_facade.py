"""The `Emulator` façade: its knobs are its state's checked settings, its clock is injected."""

from __future__ import annotations

import pytest

from callsid_resolver.testing import Emulator


def test_a_knob_set_on_the_emulator_is_checked_and_shared_with_its_state() -> None:
    emulator = Emulator()

    emulator.latency = 0.25
    with pytest.raises(ValueError, match="latency"):
        emulator.latency = -1

    assert emulator.state.settings.latency == 0.25
    assert emulator.settings is emulator.state.settings


def test_the_injected_clock_expires_signed_urls() -> None:
    now = [1_000.0]
    emulator = Emulator(clock=lambda: now[0])
    token = emulator.sign("agent_x")
    assert emulator.check_signature("agent_x", token) is None

    now[0] += emulator.signed_url_ttl + 1

    assert emulator.check_signature("agent_x", token) == "signature expired"


def test_the_repr_names_no_key() -> None:
    emulator = Emulator(api_key="sk_secret_value")

    assert "sk_secret_value" not in repr(emulator)
    assert "sk_secret_value" not in repr(emulator.state)
    assert emulator.state.signing_key.hex() not in repr(emulator.state)
