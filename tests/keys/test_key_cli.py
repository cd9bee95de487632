"""`ssmd key set|list|verify|rotate` against the simulator, which checks signatures."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
from keyfix import new_rsa, write_pem
from typer.testing import CliRunner, Result

from _support import ROOT
from ssmd.cli import app
from ssmd.keys.store import fingerprint
from ssmd.sim.clock import ManualClock
from ssmd.sim.server import DEMO_KEY_ID, DEMO_PUBLIC_KEY_PATH, KEYS_DIR, Simulator
from ssmd.venues.kalshi import auth

DEMO_PEM = KEYS_DIR / "demo_private_key.pem"


async def _ssmd(tmp: Path, *args: str) -> Result:
    env = {"SSMD_DATA_DIR": str(tmp / "data"), "HOME": str(tmp), "SSMD_ENV": "kalshi-sim"}
    # In a thread: `ssmd key verify` runs its own event loop, the simulator runs in this one.
    return await asyncio.to_thread(CliRunner().invoke, app, ["key", *args], env=env)


async def test_set_verify_list_and_rotate(tmp_path: Path) -> None:
    second = new_rsa()
    second_pem = write_pem(second, tmp_path / "second.pem")
    stranger_pem = write_pem(new_rsa(), tmp_path / "stranger.pem")
    keys = {DEMO_KEY_ID: auth.load_public_key(DEMO_PUBLIC_KEY_PATH), "key-2": second.public_key()}
    demo_fp = fingerprint(auth.load_private_key(DEMO_PEM))
    async with Simulator(clock=ManualClock(), seed=3, markets=5, keys=keys) as sim:
        where = ["--config-dir", str(ROOT / "exchanges"), "--rest-url", sim.rest_url]

        done = await _ssmd(
            tmp_path, "set", "kalshi", "--key-id", DEMO_KEY_ID, "--private-key", str(DEMO_PEM)
        )
        assert done.exit_code == 0, done.output
        assert demo_fp in done.output

        done = await _ssmd(tmp_path, "verify", "kalshi", *where)
        assert done.exit_code == 0, done.output
        assert demo_fp in done.output and "works" in done.output
        assert DEMO_KEY_ID not in done.output and "PRIVATE KEY" not in done.output

        # the right key id with the wrong private key: the signature does not check out
        done = await _ssmd(
            tmp_path, "set", "wrong", "--key-id", DEMO_KEY_ID, "--private-key", str(stranger_pem)
        )
        assert done.exit_code == 0, done.output
        done = await _ssmd(tmp_path, "verify", "wrong", *where)
        assert done.exit_code != 0
        assert "authentication failed" in done.output

        # a rotation to a key that does not work leaves the old one in place
        done = await _ssmd(
            tmp_path,
            "rotate",
            "kalshi",
            "--key-id",
            "key-2",
            "--private-key",
            str(stranger_pem),
            *where,
        )
        assert done.exit_code != 0 and "authentication failed" in done.output
        done = await _ssmd(tmp_path, "list", "--json")
        listed = {row["name"]: row for row in orjson.loads(done.stdout)}
        assert listed["kalshi"]["fingerprint"] == demo_fp

        # a working one replaces it
        done = await _ssmd(
            tmp_path,
            "rotate",
            "kalshi",
            "--key-id",
            "key-2",
            "--private-key",
            str(second_pem),
            *where,
        )
        assert done.exit_code == 0, done.output
        assert fingerprint(second) in done.output and f"was {demo_fp}" in done.output
        done = await _ssmd(tmp_path, "verify", "kalshi", *where)
        assert done.exit_code == 0 and fingerprint(second) in done.output

        done = await _ssmd(tmp_path, "list", "--json")
        rows = orjson.loads(done.stdout)
        assert [(r["name"], r["backend"], r["fingerprint"]) for r in rows] == [
            ("kalshi", "file", fingerprint(second)),
            ("wrong", "file", fingerprint(auth.load_private_key(stranger_pem))),
        ]
        assert all(r["age_days"] == 0.0 for r in rows)
        assert "PRIVATE KEY" not in done.output and "key-2" not in done.output


async def test_set_with_seal_cert_writes_a_sealed_secret(tmp_path: Path) -> None:
    from keyfix import self_signed_cert

    cluster = new_rsa()
    cert = self_signed_cert(cluster, tmp_path / "cert.pem")
    out = tmp_path / "kalshi.sealedsecret.yaml"
    done = await _ssmd(
        tmp_path,
        "set",
        "kalshi",
        "--key-id",
        DEMO_KEY_ID,
        "--private-key",
        str(DEMO_PEM),
        "--seal-cert",
        str(cert),
        "--namespace",
        "ssmd-prod",
        "--out",
        str(out),
    )
    assert done.exit_code == 0, done.output
    text = out.read_text()
    assert "kind: SealedSecret" in text and "namespace: ssmd-prod" in text
    assert DEMO_KEY_ID not in text and "PRIVATE KEY" not in text
    done = await _ssmd(tmp_path, "list", "--json")
    assert [(r["name"], r["backend"]) for r in orjson.loads(done.stdout)] == [("kalshi", "sealed")]
    # its material is in the cluster only: rotating it means sealing the new key too
    done = await _ssmd(
        tmp_path,
        "rotate",
        "kalshi",
        "--key-id",
        DEMO_KEY_ID,
        "--private-key",
        str(DEMO_PEM),
        "--rest-url",
        "http://127.0.0.1:9/trade-api/v2",
        "--config-dir",
        str(ROOT / "exchanges"),
    )
    assert done.exit_code == 2 and "--seal-cert" in done.output
