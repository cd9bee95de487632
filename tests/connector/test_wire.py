"""ssmd.bus.wire against real nats-servers: user and password, token, TLS, a credentials
file (operator mode: JWT and nkey), a cluster learned from one URL, lame-duck mode."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime
import ipaddress
import json
import os
import signal
import ssl
from datetime import timedelta
from pathlib import Path

import nats
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from ssmd import core
from ssmd.bus.auth import CA_ENV, CREDS_ENV, parse_servers
from ssmd.bus.connection import connect
from ssmd.bus.publisher import OutMsg, Publisher
from ssmd.bus.stream import ensure_stream
from ssmd.bus.wire import Wire
from ssmd.config import NatsSettings
from ssmd.exceptions import BusAuthError, ConfigError
from ssmd.testing import until
from ssmd.testing.nats import NatsCluster, NatsServer, read_stream

STREAM = "SSMD_W"


def _settings(url: str, replicas: int = 1) -> NatsSettings:
    return NatsSettings(
        url=url,
        stream=STREAM,
        subject_prefix="w.kalshi",
        retention=timedelta(hours=1),
        duplicate_window=timedelta(minutes=2),
        replicas=replicas,
    )


async def _publish_and_read(url: str, admin_url: str, n: int = 200, tag: str = "m") -> None:
    """`n` messages through a Publisher on `url`, acked, then read back in order."""
    nc = await connect(admin_url, "test-admin")
    try:
        await ensure_stream(nc.jetstream(), _settings(admin_url))
        pub = Publisher(url, "test")
        await pub.start()
        await pub.publish_many(
            [OutMsg("w.kalshi.raw.trade", b"%d" % i, f"{tag}:{i}") for i in range(n)]
        )
        assert await pub.flush(10)
        await pub.close()
        assert pub.acked == n
        got = [m.data for m in await read_stream(nc, STREAM) if m.subject == "w.kalshi.raw.trade"]
        assert got[-n:] == [b"%d" % i for i in range(n)]
    finally:
        await nc.close()


def test_urls_name_their_servers_and_credentials() -> None:
    a, b, c = parse_servers("nats://u:p%40ss@h1:4223, tls://tok@h2,h3")
    assert (a.host, a.port, a.user, a.password, a.token, a.tls) == (
        "h1",
        4223,
        "u",
        "p@ss",
        None,
        False,
    )
    assert (b.host, b.port, b.token, b.tls) == ("h2", 4222, "tok", True)
    assert (c.host, c.port, c.user, c.token) == ("h3", 4222, None, None)
    with pytest.raises(ConfigError, match="nats://host:port"):
        parse_servers("http://h1")
    with pytest.raises(ConfigError, match="no NATS server"):
        parse_servers(" , ")


async def test_user_and_password(tmp_path: Path) -> None:
    srv = NatsServer(
        tmp_path,
        args=["--user", "ssmd", "--pass", "pa55word"],
        connect_options={"user": "ssmd", "password": "pa55word"},
    )
    await srv.start()
    try:
        good = f"nats://ssmd:pa55word@127.0.0.1:{srv.port}"
        await _publish_and_read(good, good)
        pub = Publisher(f"nats://ssmd:wrong-pa55@127.0.0.1:{srv.port}", "test")
        with pytest.raises(BusAuthError, match="refused the credentials") as err:
            await pub.start()
        assert "wrong-pa55" not in str(err.value)
    finally:
        srv.stop()


async def test_token(tmp_path: Path) -> None:
    srv = NatsServer(tmp_path, args=["--auth", "t0ken-xyz"], connect_options={"token": "t0ken-xyz"})
    await srv.start()
    try:
        good = f"nats://t0ken-xyz@127.0.0.1:{srv.port}"
        await _publish_and_read(good, good)
        with pytest.raises(BusAuthError) as err:
            await Publisher(f"nats://other-t0ken@127.0.0.1:{srv.port}", "test").start()
        assert "other-t0ken" not in str(err.value)
    finally:
        srv.stop()


def _certificates(tmp: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate it signed for 127.0.0.1: (ca, cert, key) files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ssmd test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = tmp / "ca.pem", tmp / "server.pem", tmp / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


async def test_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca, cert, key = _certificates(tmp_path)
    monkeypatch.setenv(CA_ENV, str(ca))
    ctx = ssl.create_default_context(cafile=str(ca))
    srv = NatsServer(
        tmp_path / "store",
        args=["--tls", "--tlscert", str(cert), "--tlskey", str(key)],
        connect_options={"tls": ctx},
    )
    await srv.start()
    try:
        tls_url = f"tls://127.0.0.1:{srv.port}"
        await _publish_and_read(tls_url, tls_url, tag="a")
        # A nats:// URL to a server that requires TLS upgrades as well.
        await _publish_and_read(f"nats://127.0.0.1:{srv.port}", tls_url, tag="b")
        # Without the CA the server's certificate is not trusted.
        monkeypatch.delenv(CA_ENV)
        with pytest.raises(ssl.SSLCertVerificationError):
            await Publisher(tls_url, "test").start()
    finally:
        srv.stop()


# ---- operator mode: nkeys and JWTs, as nsc makes them -----------------------------------

_PREFIX = {"operator": 14 << 3, "account": 0, "user": 20 << 3}
_SEED = 18 << 3


def _encode(raw: bytes) -> str:
    raw += binascii.crc_hqx(raw, 0).to_bytes(2, "little")
    return base64.b32encode(raw).decode().rstrip("=")


class _NKey:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.key = Ed25519PrivateKey.generate()
        self.seed_bytes = self.key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        pub = self.key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public = _encode(bytes([_PREFIX[kind]]) + pub)
        p = _PREFIX[kind]
        self.seed = _encode(bytes([_SEED | p >> 5, (p & 31) << 3]) + self.seed_bytes)

    def jwt(self, subject: _NKey, nats_claims: dict[str, object]) -> str:
        """A JWT about `subject`, signed by this key."""

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).decode().rstrip("=")

        header = b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
        claims = {
            "jti": b64(os.urandom(16)),
            "iat": int(datetime.datetime.now(datetime.UTC).timestamp()),
            "iss": self.public,
            "name": subject.kind,
            "sub": subject.public,
            "nats": {**nats_claims, "type": subject.kind, "version": 2},
        }
        body = f"{header}.{b64(json.dumps(claims).encode())}"
        return f"{body}.{b64(self.key.sign(body.encode()))}"


def _operator_mode(tmp: Path) -> tuple[Path, Path, _NKey]:
    """A server config in operator mode with one account (JetStream enabled), and a user
    credentials file for it: (config, creds, account key)."""
    operator, system, account, user = (
        _NKey("operator"),
        _NKey("account"),
        _NKey("account"),
        _NKey("user"),
    )
    op_jwt = operator.jwt(operator, {})
    unlimited = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                 "wildcards": True, "conn": -1, "leaf": -1,
                 "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}  # fmt: skip
    acc_jwt = operator.jwt(account, {"limits": unlimited})
    sys_jwt = operator.jwt(system, {})
    user_jwt = account.jwt(user, {"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1})
    (tmp / "op.jwt").write_text(op_jwt)
    config = tmp / "server.conf"
    config.write_text(
        f'operator: "{tmp / "op.jwt"}"\n'
        f"system_account: {system.public}\n"
        "resolver: MEMORY\n"
        f"resolver_preload: {{ {account.public}: {acc_jwt}, {system.public}: {sys_jwt} }}\n"
    )
    creds = tmp / "user.creds"
    creds.write_text(
        "-----BEGIN NATS USER JWT-----\n"
        f"{user_jwt}\n"
        "------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{user.seed}\n"
        "------END USER NKEY SEED------\n"
    )
    return config, creds, account


async def test_credentials_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, creds, _ = _operator_mode(tmp_path)
    monkeypatch.setenv(CREDS_ENV, str(creds))
    from ssmd.bus.auth import credentials

    c = credentials()
    assert c is not None
    srv = NatsServer(
        tmp_path / "store",
        args=["-c", str(config)],
        connect_options={
            "user_jwt_cb": lambda: c.jwt.encode(),
            "signature_cb": lambda nonce: c.sign(nonce).encode(),
        },
    )
    await srv.start()
    try:
        # A core publish with a reply, to a subject no stream takes: the server's
        # "no responders" answer comes back on the wire's inbox.
        got: list[core.Received] = []
        answered = asyncio.Event()

        def received(r: core.Received) -> None:
            got.append(r)
            answered.set()

        wire = Wire(srv.url, "test", "_INBOX.t.", on_received=received, on_lost=lambda why: None)
        await wire.start()
        window = core.PublishWindow("_INBOX.t.")
        window.hold(core.OutBatch([OutMsg("x", b"", "id:0")]), 0, 1, 0.0)  # token 0 taken
        await wire.write(window.send(core.OutBatch([OutMsg("nobody.here", b"x", "id:1")]), 0, 1, 0))
        await asyncio.wait_for(answered.wait(), 5)
        await wire.close()
        assert got[0].refusals[0][0] == 1 and "no responders" in got[0].refusals[0][1]
        # And JetStream through the Publisher with the same credentials.
        await _publish_and_read(srv.url, srv.url)
        # Another user's seed with this JWT is refused.
        other = _NKey("user")
        creds.write_text(creds.read_text().replace(_seed_of(creds), other.seed))
        with pytest.raises(BusAuthError):
            await Publisher(srv.url, "test").start()
    finally:
        srv.stop()


def _seed_of(creds: Path) -> str:
    lines = creds.read_text().splitlines()
    return lines[lines.index("-----BEGIN USER NKEY SEED-----") + 1]


def test_damaged_credentials_name_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ssmd.bus.auth import credentials

    bad = tmp_path / "bad.creds"
    bad.write_text("-----BEGIN NATS USER JWT-----\nabc\n-----BEGIN USER NKEY SEED-----\nSUAXYZ\n")
    monkeypatch.setenv(CREDS_ENV, str(bad))
    with pytest.raises(ConfigError, match=f"seed in {bad} is damaged"):
        credentials()
    monkeypatch.setenv(CREDS_ENV, str(tmp_path / "missing.creds"))
    with pytest.raises(ConfigError, match="cannot read the NATS credentials file"):
        credentials()


@pytest.mark.xdist_group("cluster")
async def test_cluster_from_one_url_and_lame_duck(tmp_path: Path) -> None:
    """Given one server's URL, the wire learns the cluster's others; when that server
    enters lame-duck mode the publisher moves to another and loses nothing."""
    cluster = NatsCluster(tmp_path, 3)
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(cluster.stop)
        await cluster.start()
        first = cluster.servers[0]
        nc = await nats.connect(servers=cluster.url.split(","))
        stack.push_async_callback(nc.close)
        await ensure_stream(nc.jetstream(), _settings(cluster.url, replicas=3))
        await cluster.settled(STREAM)
        reasons: list[str] = []
        pub = Publisher(first.url, "test", max_inflight=64, on_error=reasons.append)
        await pub.start()
        stack.push_async_callback(pub.close)
        msgs = [OutMsg("w.kalshi.raw.trade", b"%d" % i, f"c:{i}") for i in range(3000)]
        await pub.publish_many(msgs[:1000])
        assert await pub.flush(10)
        wire = pub._wire
        assert {s.port for s in wire.servers} == {s.port for s in cluster.servers}
        assert wire.server.port == first.port
        assert first.proc is not None
        first.proc.send_signal(signal.SIGUSR2)  # lame-duck mode
        await pub.publish_many(msgs[1000:2000])
        # It leaves at the INFO that announces lame duck, long before the server would
        # close its connection (a 10 s grace period, then two minutes).
        await until(lambda: wire.server.port != first.port, 8, "the wire to leave")
        # The server also hands its stream leadership over: a publish that reaches it
        # meanwhile is refused (no responders) and replayed like any other refusal.
        lame_duck = f"127.0.0.1:{first.port} entered lame-duck mode"
        refused = "publish rejected: no responders: no stream takes the subject"
        assert reasons and set(reasons) <= {lame_duck, refused}
        assert await pub.flush(30)
        assert pub.reordered == 0
        first.stop()
        await pub.publish_many(msgs[2000:])
        assert await pub.flush(30)
        # Read back once the whole cluster is there again (with a server gone, the
        # JetStream API may answer 503 until the meta leader is elected again).
        await first.start()
        await cluster.settled(STREAM)
        got = [int(m.data) for m in await read_stream(nc, STREAM)]
        assert got == list(range(3000))
