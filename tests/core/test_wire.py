"""encode_publishes: NATS HPUB commands whose byte counts frame each message exactly."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ssmd import core
from ssmd.bus.publisher import OutMsg

_token = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12)
_value = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)


def _reference(msg: OutMsg, reply: bytes) -> bytes:
    """The command as the NATS client protocol defines it."""
    lines = [b"NATS/1.0", b"Nats-Msg-Id: " + msg.msg_id.encode()]
    lines += [f"{k}: {v}".encode() for k, v in (msg.headers or {}).items()]
    head = b"\r\n".join(lines) + b"\r\n" + msg.header_lines + b"\r\n"
    total = len(head) + len(msg.payload)
    return (
        b"HPUB %s %s %d %d\r\n" % (msg.subject.encode(), reply, len(head), total)
        + head
        + msg.payload
        + b"\r\n"
    )


@given(
    st.lists(
        st.tuples(
            _token,
            st.binary(max_size=64),
            _token,
            st.none() | st.dictionaries(_token, _value, max_size=3),
            st.sampled_from([b"", b"Ssmd-Conn-Id: 7\r\n"]),
        ),
        max_size=8,
    ),
    st.integers(min_value=0, max_value=2**40),
)
def test_each_command_matches_the_protocol(
    items: list[tuple[str, bytes, str, dict[str, str] | None, bytes]], first: int
) -> None:
    msgs = [OutMsg(s, p, i, h, 0, lines) for s, p, i, h, lines in items]
    got = core.encode_publishes(msgs, b"_INBOX.abc.", first)
    want = b"".join(_reference(m, b"_INBOX.abc.%d" % (first + k)) for k, m in enumerate(msgs))
    assert got == want


def test_a_message_without_payload_or_headers() -> None:
    got = core.encode_publishes([OutMsg("a.b", b"", "x")], b"R.", 3)
    assert got == b"HPUB a.b R.3 28 28\r\nNATS/1.0\r\nNats-Msg-Id: x\r\n\r\n\r\n"
