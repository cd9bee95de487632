"""The Kubernetes runtime against the apps/v1 API as exchanges in order (no API server
runs here): scale a Deployment to 1 and wait for its ready replica, find it running,
states (a missing Deployment named with the convention), an error kept as an
annotation, scale to 0 and wait until its pod is gone, find it stopped.

A replaying server answers each request with the next exchange of
tests/ops/data/k8s_exchanges.json after checking method, path, content type and body.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from _support import ROOT
from ssmd.config import Overrides, load_environment
from ssmd.ops.kube import KubernetesRuntime

EXCHANGES = Path(__file__).parent / "data" / "k8s_exchanges.json"


class Replay:
    def __init__(self) -> None:
        self.exchanges: list[dict[str, Any]] = json.loads(EXCHANGES.read_text())["exchanges"]
        self.at = 0
        self.errors: list[str] = []

    def answer(self, method: str, path: str, ctype: str, body: bytes) -> tuple[int, bytes]:
        if self.at >= len(self.exchanges):
            self.errors.append(f"unexpected {method} {path}")
            return 500, b"{}"
        want = self.exchanges[self.at]
        self.at += 1
        req = want["request"]
        got = {"method": method, "path": path.split("?")[0]}
        if (req["method"], req["path"]) != (got["method"], got["path"]):
            self.errors.append(
                f"exchange {self.at}: wanted {req['method']} {req['path']}, got {got}"
            )
        elif "body" in req:
            if ctype != req["content_type"]:
                self.errors.append(f"exchange {self.at}: content type {ctype}")
            if json.loads(body) != req["body"]:
                self.errors.append(f"exchange {self.at}: body {body!r}")
        return int(want["response"]["status"]), json.dumps(want["response"]["body"]).encode()


@pytest.fixture
def replay() -> Iterator[tuple[Replay, str]]:
    state = Replay()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            ctype = self.headers.get("Content-Type", "")
            status, out = state.answer(self.command, self.path, ctype, body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_PATCH = _serve  # http.server looks handlers up by these names

        def log_message(self, *_args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_scales_deployments_by_the_naming_convention(
    replay: tuple[Replay, str], tmp_path: Path
) -> None:
    state, host = replay
    config = client.Configuration(host=host)
    api = client.AppsV1Api(client.ApiClient(config))
    env = load_environment(
        "kalshi-sim", ROOT / "exchanges", Overrides(data_dir=str(tmp_path)), environ={}
    )
    rt = KubernetesRuntime(env, namespace="ssmd", api=api, poll=0.01)
    beats: list[str] = []

    assert await rt.start("connector", beats.append) == "started"
    assert beats == ["waiting for connector"]  # one look at a replica not ready yet
    assert await rt.start("connector") == "already running"
    states = {s.name: s for s in await rt.states()}
    assert (states["connector"].state, states["connector"].detail) == ("running", "1/1 ready")
    assert states["archiver"].state == "stopped"
    assert states["gateway"].state == "missing"
    assert "ssmd-kalshi-sim-COMPONENT" in str(states["gateway"].last_error)
    rt.record_error("archiver", "archiver exited while starting")
    assert await rt.stop("connector") == "stopped"
    assert await rt.stop("connector") == "already stopped"
    assert state.errors == []
    assert state.at == len(state.exchanges), "not every exchange was made"
