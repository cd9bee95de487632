"""`POST /v1/data-issues` and `GET /v1/data-issues[/{id}]` on a gateway with API keys and a
real nats-server: the key is required, the reporter is the key's name, the report lands in
the security master database and on the journal `{env}.journal.data_issue`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import httpx
import nats
import orjson
import pytest

from _support.gwfix import ENV, gateway_settings, publisher, running_gateway
from ssmd import issues
from ssmd.gateway.auth import KeyRing, new_key
from ssmd.secmaster.db import Store
from ssmd.secmaster.journal import journal_stream
from ssmd.testing.nats import nats_server

pytestmark = pytest.mark.timeout(120)

REPORT = {
    "ticker": "KXBTCD-26DEC0317-T118000",
    "start": "2026-12-03T12:00:00Z",
    "end": "2026-12-03T12:05:00Z",
    "description": "the best ask jumps to 0.99 for one second",
    "reporter": "claude",
}


async def test_reports_need_a_key_are_stored_and_journaled(tmp_path: Path) -> None:
    key, line = new_key("alice")
    db = tmp_path / "secmaster.sqlite3"
    with Store.open(db) as s:
        s.migrate()
    # (the publisher makes the stream the gateway follows, as the connector would)
    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url):
        settings = replace(
            gateway_settings(srv.url, keys=KeyRing.parse(line)), store=lambda: Store.open(db)
        )
        async with running_gateway(settings) as gw, httpx.AsyncClient(base_url=gw.http) as http:
            refused = await http.post("/v1/data-issues", json=REPORT)
            assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
            assert (await http.get("/v1/data-issues")).status_code == 401

            auth = {"X-API-Key": key}
            bad = await http.post("/v1/data-issues", json={**REPORT, "end": "soon"}, headers=auth)
            assert bad.status_code == 400 and "end: 'soon' is not a time" in bad.json()["message"]
            junk = await http.post("/v1/data-issues", content=b"{oops", headers=auth)
            assert junk.status_code == 400 and junk.json()["code"] == "bad_json"

            made = await http.post("/v1/data-issues", json=REPORT, headers=auth)
            assert made.status_code == 201, made.text
            issue = made.json()
            assert issue["reporter"] == "alice/claude" and issue["status"] == "open"
            assert issue["journal"] == "published"

            one = await http.get(f"/v1/data-issues/{issue['id']}", headers=auth)
            assert one.json() == {k: v for k, v in issue.items() if k != "journal"}
            assert (await http.get("/v1/data-issues/999", headers=auth)).status_code == 404
            listed = await http.get(
                "/v1/data-issues", params={"from": "2026-12-03", "to": "2026-12-04"}, headers=auth
            )
            assert [i["id"] for i in listed.json()["issues"]] == [issue["id"]]
            other_day = await http.get(
                "/v1/data-issues", params={"from": "2026-12-04"}, headers=auth
            )
            assert other_day.json()["issues"] == []
            assert (
                await http.get("/v1/data-issues", params={"status": "maybe"}, headers=auth)
            ).status_code == 400

        # In the database with its reporter; published, so no longer in the outbox.
        with Store.open(db) as s:
            stored = issues.get(s, issue["id"])
            assert stored is not None and stored.reporter == "alice/claude"
            assert s.outbox() == []

        nc = await nats.connect(srv.url)
        try:
            js = nc.jetstream()
            msg = await js.get_last_msg(journal_stream(ENV), f"{ENV}.journal.data_issue")
            body = orjson.loads(msg.data or b"")
            assert body["action"] == "reported" and body["id"] == issue["id"]
            assert body["description"] == REPORT["description"]
        finally:
            await nc.close()


async def test_without_a_database_the_answer_says_how_to_make_one(tmp_path: Path) -> None:
    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url):
        settings = replace(gateway_settings(srv.url), store=lambda: None)
        async with running_gateway(settings) as gw, httpx.AsyncClient(base_url=gw.http) as http:
            resp = await http.post("/v1/data-issues", json=REPORT)
            assert resp.status_code == 503
            assert "ssmd market sync" in resp.json()["message"]
