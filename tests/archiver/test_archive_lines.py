"""Raw archive lines: every line is JSON and gives back its frame byte for byte."""

from __future__ import annotations

import base64

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from ssmd import core

PREFIX = "kalshi-sim.kalshi"
RNS = 1_784_592_000_123_456_789


def lines_of(frames: list[bytes], conn: str | None = "7") -> list[bytes]:
    headers = {core.RECEIVE_HEADER: str(RNS)}
    if conn is not None:
        headers[core.CONN_HEADER] = conn
    deliveries = core.Deliveries(
        [(f"{PREFIX}.raw.trade", i + 1, RNS, headers, frame) for i, frame in enumerate(frames)]
    )
    routed = core.route_batch(deliveries, PREFIX, core.Coverage(), RNS)
    data = b"".join(dest.chunk.items for dest in routed.chunks)
    return data.splitlines(keepends=True)


def frame_of(obj: dict[str, object]) -> bytes:
    if "data_b64" in obj:
        return base64.b64decode(str(obj["data_b64"]))
    if "data_text" in obj:
        return str(obj["data_text"]).encode()
    raise AssertionError("spliced frames are checked against the line's bytes")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    frame=st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(str.encode),
        json_values.map(orjson.dumps),
        # valid JSON with the escapes strict readers refuse or accept
        st.sampled_from(
            [b'"\\ud800"', b'"\\ud83d\\ude00"', b"1e400", b"1" * 400, b"18446744073709551616"]
        ),
    ),
    # any header value NATS carries: UTF-8 (no lone surrogate), no line break, no
    # surrounding whitespace
    conn=st.one_of(
        st.none(),
        st.text(
            st.characters(exclude_characters="\r\n", exclude_categories=["Cs"]), max_size=5
        ).map(str.strip),
    ),
)
def test_every_line_is_json_and_holds_its_frame(frame: bytes, conn: str | None) -> None:
    (line,) = lines_of([frame], conn)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    obj = orjson.loads(line)
    assert obj["rns"] == RNS and obj["ts"] == RNS // 1_000_000 and obj["seq"] == 1
    assert obj["conn"] is None if conn is None else str(obj["conn"]) == conn
    if "data" in obj:
        assert b'"data":' + frame + b',"conn":' in line
    else:
        assert frame_of(obj) == frame


def test_a_json_frame_is_spliced_and_a_broken_one_is_kept_as_text() -> None:
    good = b'{"type":"trade","msg":{"yes_price_dollars":"0.4200"}}'
    broken = b'{"type":"trade","msg":{'
    spliced, kept = lines_of([good, broken])
    assert spliced.startswith(b'{"ts":1784592000123,"rns":1784592000123456789,"type":"trade"')
    assert b',"data":' + good + b',"conn":7,"seq":1}\n' in spliced
    assert orjson.loads(kept)["data_text"] == broken.decode()
