"""`ssmd tui` with nothing running on the data directory and no gateway at its URL: every
pane says what it could not read and how to fix it, every action answers with why it
cannot be done, and the app keeps running."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from _support import ROOT
from ssmd.config import Overrides, load_environment
from ssmd.exceptions import ActionError
from ssmd.tui.app import SsmdTui
from ssmd.tui.backend import Backend
from ssmd.up.nats import free_port


async def settle(pilot: Pilot[None], cond: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)


async def test_nothing_running_is_said_and_actions_are_refused(tmp_path: Path) -> None:
    env = load_environment("kalshi-sim", ROOT / "exchanges", Overrides(data_dir=str(tmp_path)))
    gateway = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    backend = Backend(env, gateway)
    app = SsmdTui(backend, interval=0.2)
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            notes = {"summary", "markets-note", "days-note", "issues-note"}
            await settle(pilot, lambda: notes <= set(app.notes), "the first reading")
            assert app.rows["components-table"] == []
            assert app.notes["summary"].startswith(f"supervised by none; gateway {gateway}:")
            for note in ("markets-note", "issues-note"):
                assert f"the gateway at {gateway} does not answer" in app.notes[note]
                assert "give `ssmd tui` its URL with --gateway" in app.notes[note]
            assert app.rows["days-table"] == [] and app.notes["days-note"].startswith("days with")

            await pilot.press("y")
            assert app.message == "resync: pick a market first (Markets, Enter)"
            await pilot.press("x")
            assert app.message == "stop: select a component in Components (1) first"
            await pilot.press("s")
            await settle(pilot, lambda: app.message.startswith("failed"), "the seal's refusal")
            assert app.message == "failed: the archiver is not running here (no endpoint to ask)"

            assert app.is_running
    finally:
        await backend.aclose()


async def test_control_without_a_supervisor_names_the_commands(tmp_path: Path) -> None:
    env = load_environment("kalshi-sim", ROOT / "exchanges", Overrides(data_dir=str(tmp_path)))
    backend = Backend(env, f"http://127.0.0.1:{free_port()}")
    try:
        assert backend.supervision().kind == "none"
        for action in ("stop", "start"):
            with pytest.raises(ActionError, match=r"`ssmd up` or `ssmd ops start`"):
                await backend.control(action, "connector")
    finally:
        await backend.aclose()
