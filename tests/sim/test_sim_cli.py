"""`ssmd sim run --venue`: each venue's simulator from the command line, as a cluster runs
it for an environment whose venue is on loopback (`ssmd deploy render`)."""

from __future__ import annotations

import signal
import subprocess

import httpx
import pytest
from typer.testing import CliRunner

from ssmd.cli import app
from ssmd.up.components import ssmd_argv


@pytest.mark.parametrize(
    ("venue", "ws_path", "rest_path"),
    [("kraken", "/v2", "/0/public/SystemStatus"), ("polymarket", "/ws/market", "/markets")],
)
def test_a_venues_simulator_serves_its_rest_and_stops_on_ctrl_c(
    venue: str, ws_path: str, rest_path: str
) -> None:
    argv = [*ssmd_argv(), "sim", "run", "--venue", venue, "--port", "0", "--seed", "3"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        try:
            ws_url = proc.stdout.readline().split()[-1]  # bounded by pytest's timeout
            rest_url = proc.stdout.readline().split()[-1]
            seed = proc.stdout.readline().split()
            exports = [proc.stdout.readline().strip() for _ in range(2)]
            response = httpx.get(rest_url + rest_path, timeout=10.0)
        finally:
            proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    assert ws_url.startswith("ws://127.0.0.1:") and ws_url.endswith(ws_path)
    assert seed == ["Seed:", "3"]
    assert exports == [
        f"export SSMD_{venue.upper()}_WS_URL={ws_url}",
        f"export SSMD_{venue.upper()}_REST_URL={rest_url}",
    ]
    assert response.status_code == 200, response.text
    assert proc.returncode == 0
    assert rest.strip().endswith("simulator stopped")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--venue", "kraken", "--era", "A"], "--era, --scenario, --rest-cache are Kalshi's only"),
        (["--venue", "bitmex"], "no simulator for the venue 'bitmex' (kalshi, kraken, polymarket)"),
    ],
)
def test_what_a_venues_simulator_does_not_take_is_refused(extra: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["sim", "run", *extra])
    assert result.exit_code == 2
    assert message in " ".join(result.output.replace("│", " ").split())


@pytest.mark.parametrize("venue", ["kalshi", "kraken", "polymarket"])
def test_without_a_seed_each_start_gets_a_fresh_one_and_prints_it(venue: str) -> None:
    """A simulator pod restarted by its cluster must not send the same trade ids again."""
    seeds = []
    for _ in range(2):
        argv = [*ssmd_argv(), "sim", "run", "--venue", venue, "--port", "0"]
        with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as proc:
            assert proc.stdout is not None
            try:
                # bounded by pytest's timeout
                line = next(x for x in proc.stdout if x.startswith("Seed:"))
            finally:
                proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=30)
        seeds.append(int(line.split()[1]))
    assert seeds[0] != seeds[1]  # two draws of 31 bits
