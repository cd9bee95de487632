//! The NATS client protocol's publish command, for batches of JetStream
//! publishes: one `HPUB` per message, each with a `Nats-Msg-Id` header (the
//! stream's de-duplication key) and a reply subject on which its PubAck comes
//! back. Encoding a batch here saves the publisher a Python format per message.

/// Appends `HPUB <subject> <reply_prefix><token> <hdr len> <total len>` with
/// the headers `Nats-Msg-Id: <msg_id>` and `extra` (whole `Key: value\r\n`
/// lines), then the payload.
pub fn write_hpub(
    out: &mut Vec<u8>,
    subject: &[u8],
    reply_prefix: &[u8],
    token: u64,
    msg_id: &[u8],
    extra: &[u8],
    payload: &[u8],
) {
    const HEAD: &[u8] = b"NATS/1.0\r\nNats-Msg-Id: ";
    let hdr_len = HEAD.len() + msg_id.len() + 2 + extra.len() + 2;
    let mut num = itoa::Buffer::new();
    out.extend_from_slice(b"HPUB ");
    out.extend_from_slice(subject);
    out.push(b' ');
    out.extend_from_slice(reply_prefix);
    out.extend_from_slice(num.format(token).as_bytes());
    out.push(b' ');
    out.extend_from_slice(num.format(hdr_len).as_bytes());
    out.push(b' ');
    out.extend_from_slice(num.format(hdr_len + payload.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(HEAD);
    out.extend_from_slice(msg_id);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(extra);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

/// One PubAck taken off the wire by [`parse_acks`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The reply token the message was published with.
    pub token: u64,
    /// The stream sequence (0 when the ack has none, e.g. an error).
    pub seq: u64,
    pub duplicate: bool,
    /// The payload holds an `"error"`: the publish was refused.
    pub error: bool,
    /// Where the payload is in the input.
    pub payload: (usize, usize),
}

/// Reads consecutive `MSG <head><token> <sid> <size>\r\n<payload>\r\n`
/// PubAcks from `data[pos..]`. Returns them and where the first byte that
/// is not such a complete ack (another message, or a split one) starts.
pub fn parse_acks(data: &[u8], mut pos: usize, head: &[u8], sid: u64) -> (Vec<Ack>, usize) {
    let mut acks = Vec::new();
    while let Some((ack, end)) = parse_ack(data, pos, head, sid) {
        acks.push(ack);
        pos = end;
    }
    (acks, pos)
}

fn parse_ack(data: &[u8], pos: usize, head: &[u8], sid: u64) -> Option<(Ack, usize)> {
    let rest = data.get(pos..)?.strip_prefix(b"MSG ")?.strip_prefix(head)?;
    let (token, rest) = number(rest)?;
    let rest = rest.strip_prefix(b" ")?;
    let (got_sid, rest) = number(rest)?;
    if got_sid != sid {
        return None;
    }
    let rest = rest.strip_prefix(b" ")?;
    let (size, rest) = number(rest)?;
    let rest = rest.strip_prefix(b"\r\n")?;
    let size = usize::try_from(size).ok()?;
    let payload = rest.get(..size)?;
    rest.get(size..)?.strip_prefix(b"\r\n")?;
    let start = data.len() - rest.len();
    let ack = Ack {
        token,
        seq: field_number(payload, b"\"seq\"").unwrap_or(0),
        duplicate: field_is_true(payload, b"\"duplicate\""),
        error: find(payload, b"\"error\"").is_some(),
        payload: (start, start + size),
    };
    Some((ack, start + size + 2))
}

/// A run of ASCII digits (at least one) as u64, and what follows it.
fn number(s: &[u8]) -> Option<(u64, &[u8])> {
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    let value = s[..digits]
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some((value, &s[digits..]))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The value after `"key":` (spaces allowed), read as a number.
fn field_number(payload: &[u8], key: &[u8]) -> Option<u64> {
    let at = find(payload, key)? + key.len();
    let rest = payload[at..].trim_ascii_start().strip_prefix(b":")?;
    number(rest.trim_ascii_start()).map(|(n, _)| n)
}

fn field_is_true(payload: &[u8], key: &[u8]) -> bool {
    find(payload, key).is_some_and(|at| {
        payload[at + key.len()..]
            .trim_ascii_start()
            .strip_prefix(b":")
            .is_some_and(|v| v.trim_ascii_start().starts_with(b"true"))
    })
}

/// One message delivered to a subscription, taken off the wire by
/// [`parse_deliveries`]. Spans index the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub sid: u64,
    pub subject: (usize, usize),
    pub reply: (usize, usize),
    /// The header block (`NATS/1.0...\r\n\r\n`), empty for a plain MSG.
    pub headers: (usize, usize),
    pub payload: (usize, usize),
    /// The status code of a status message (`NATS/1.0 408 ...`), else 0.
    pub status: u16,
    /// From a JetStream ack subject: the stream sequence and the time the
    /// stream stored the message (ns); 0 when the reply is no such subject.
    pub stream_seq: u64,
    pub stored_ns: u64,
}

/// Reads consecutive `MSG`/`HMSG` messages for subscription `sid` from
/// `data[pos..]`. Returns them and where the first byte that is not such a
/// complete message (another subscription's, another command, or a split
/// one) starts.
pub fn parse_deliveries(data: &[u8], mut pos: usize, sid: u64) -> (Vec<Delivery>, usize) {
    let mut out = Vec::new();
    while let Parsed::Complete(d, end) = parse_message(data, pos) {
        if d.sid != sid {
            break;
        }
        out.push(d);
        pos = end;
    }
    (out, pos)
}

/// What the bytes at a position hold, for a `MSG`/`HMSG` of any subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extent {
    /// A whole message, ending at this offset.
    Complete(usize),
    /// The start of one: more bytes are needed.
    Incomplete,
    /// Not a message the protocol allows (or not a message at all).
    Malformed,
}

/// The extent of the `MSG`/`HMSG` (any subscription) at `data[pos..]`.
pub fn message_extent(data: &[u8], pos: usize) -> Extent {
    match parse_message(data, pos) {
        Parsed::Complete(_, end) => Extent::Complete(end),
        Parsed::Incomplete => Extent::Incomplete,
        Parsed::Malformed => Extent::Malformed,
    }
}

/// The server's limit on a control line (nats-server's default max_control_line).
const MAX_CONTROL_LINE: usize = 4096;

enum Parsed {
    Complete(Delivery, usize),
    Incomplete,
    Malformed,
}

fn parse_message(data: &[u8], pos: usize) -> Parsed {
    let rest = data.get(pos..).unwrap_or_default();
    let (with_headers, rest) = if let Some(r) = rest.strip_prefix(b"HMSG ") {
        (true, r)
    } else if let Some(r) = rest.strip_prefix(b"MSG ") {
        (false, r)
    } else if b"HMSG ".starts_with(rest) || b"MSG ".starts_with(rest) {
        return Parsed::Incomplete;
    } else {
        return Parsed::Malformed;
    };
    let line_start = data.len() - rest.len();
    let Some(line_len) = find(rest, b"\r\n") else {
        return if rest.len() > MAX_CONTROL_LINE {
            Parsed::Malformed
        } else {
            Parsed::Incomplete
        };
    };
    let line = &rest[..line_len];
    let body = line_start + line_len + 2;
    let mut fields = [(0usize, 0usize); 5];
    let mut n = 0;
    let mut at = 0;
    for tok in line.split(|b| *b == b' ') {
        if !tok.is_empty() {
            if n == fields.len() {
                return Parsed::Malformed;
            }
            fields[n] = (line_start + at, line_start + at + tok.len());
            n += 1;
        }
        at += tok.len() + 1;
    }
    let num = |span: (usize, usize)| {
        number(&data[span.0..span.1])
            .filter(|(_, r)| r.is_empty())
            .and_then(|(v, _)| usize::try_from(v).ok())
    };
    // subject sid [reply] [hdr_len] total_len
    let sizes = if with_headers { 2 } else { 1 };
    if n != 2 + sizes && n != 3 + sizes {
        return Parsed::Malformed;
    }
    let reply = if n == 3 + sizes { fields[2] } else { (0, 0) };
    let hdr_len = if with_headers {
        num(fields[n - 2])
    } else {
        Some(0)
    };
    let (Some(sid), Some(total), Some(hdr_len)) = (num(fields[1]), num(fields[n - 1]), hdr_len)
    else {
        return Parsed::Malformed;
    };
    if hdr_len > total {
        return Parsed::Malformed;
    }
    if data.len() < body + total + 2 {
        return Parsed::Incomplete;
    }
    if &data[body + total..body + total + 2] != b"\r\n" {
        return Parsed::Malformed;
    }
    let headers = (body, body + hdr_len);
    let (stream_seq, stored_ns) = ack_subject(&data[reply.0..reply.1]).unwrap_or((0, 0));
    let d = Delivery {
        sid: sid as u64,
        subject: fields[0],
        reply,
        headers,
        payload: (body + hdr_len, body + total),
        status: status_code(&data[headers.0..headers.1]),
        stream_seq,
        stored_ns,
    };
    Parsed::Complete(d, body + total + 2)
}

/// The `Key: value` lines of a header block (after its `NATS/1.0` line),
/// trimmed; lines without a colon are skipped.
pub fn header_fields(block: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    block
        .split(|b| *b == b'\n')
        .skip(1)
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|b| *b == b':')?;
            Some((line[..colon].trim_ascii(), line[colon + 1..].trim_ascii()))
        })
        .filter(|(k, _)| !k.is_empty())
}

/// `NATS/1.0 <code> ...` -> code; 0 for a plain header block.
fn status_code(headers: &[u8]) -> u16 {
    headers
        .strip_prefix(b"NATS/1.0 ")
        .and_then(number)
        .and_then(|(n, _)| u16::try_from(n).ok())
        .unwrap_or(0)
}

/// (stream seq, stored ns) of a JetStream ack subject:
/// `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ns>.<pending>`, or
/// with domain and account hash after `$JS.ACK` and a token at the end.
fn ack_subject(reply: &[u8]) -> Option<(u64, u64)> {
    let rest = reply.strip_prefix(b"$JS.ACK.")?;
    let tokens: Vec<&[u8]> = rest.split(|b| *b == b'.').collect();
    let base = match tokens.len() {
        7 => 0,
        n if n >= 10 => 2,
        _ => return None,
    };
    let whole = |t: &[u8]| number(t).filter(|(_, r)| r.is_empty()).map(|(n, _)| n);
    Some((whole(tokens[base + 3])?, whole(tokens[base + 5])?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_of_one_subscription_with_their_jetstream_metadata() {
        let reply = "$JS.ACK.S.arch.1.41.7.1700000000123456789.3";
        let hdr = "NATS/1.0\r\nSsmd-Conn-Id: 9\r\n\r\n";
        let mut data = format!(
            "HMSG a.b.raw.trade 4 {reply} {} {}\r\n{hdr}xyz\r\n",
            hdr.len(),
            hdr.len() + 3
        )
        .into_bytes();
        data.extend(b"MSG a.b.trade.T 4 $JS.ACK.D.h.S.arch.1.42.8.5.0.tok 2\r\nhi\r\n");
        let status = "NATS/1.0 408 Request Timeout\r\n\r\n";
        data.extend(
            format!(
                "HMSG _INBOX.q 4 {} {}\r\n{status}\r\n",
                status.len(),
                status.len()
            )
            .bytes(),
        );
        let other = data.len();
        data.extend(b"MSG x 5 1\r\nz\r\n");
        let (got, end) = parse_deliveries(&data, 0, 4);
        assert_eq!(end, other);
        assert_eq!(message_extent(&data, other), Extent::Complete(data.len()));
        assert_eq!(
            message_extent(&data[..data.len() - 1], other),
            Extent::Incomplete
        );
        assert_eq!(message_extent(b"HMS", 0), Extent::Incomplete);
        assert_eq!(message_extent(b"PING\r\n", 0), Extent::Malformed);
        assert_eq!(message_extent(b"MSG x 5 abc\r\n", 0), Extent::Malformed);
        assert_eq!(message_extent(b"MSG x 5 1\r\nzz\r\n", 0), Extent::Malformed);
        assert_eq!(message_extent(b"MSG x y 1\r\n", 0), Extent::Malformed);
        assert_eq!(got.len(), 3);
        let text = |s: (usize, usize)| std::str::from_utf8(&data[s.0..s.1]).unwrap();
        assert_eq!(text(got[0].subject), "a.b.raw.trade");
        assert_eq!(text(got[0].reply), reply);
        assert_eq!(text(got[0].headers), hdr);
        assert_eq!(text(got[0].payload), "xyz");
        assert_eq!(
            (got[0].stream_seq, got[0].stored_ns),
            (41, 1_700_000_000_123_456_789)
        );
        assert_eq!((got[1].stream_seq, got[1].stored_ns), (42, 5));
        assert_eq!(text(got[1].payload), "hi");
        assert_eq!(got[1].headers.0, got[1].headers.1);
        assert_eq!((got[2].status, got[2].stream_seq), (408, 0));
        assert_eq!(got[2].reply, (0, 0));
    }

    #[test]
    fn a_split_delivery_is_left_for_the_next_read() {
        let hdr = "NATS/1.0\r\nK: v\r\n\r\n";
        let data =
            format!("HMSG s 4 r {} {}\r\n{hdr}abc\r\n", hdr.len(), hdr.len() + 3).into_bytes();
        for cut in 0..data.len() {
            let (got, end) = parse_deliveries(&data[..cut], 0, 4);
            assert!(got.is_empty() && end == 0, "cut {cut}");
        }
        assert_eq!(parse_deliveries(&data, 0, 4).1, data.len());
    }

    fn ack(token: u64, sid: u64, payload: &str) -> Vec<u8> {
        format!("MSG _I.x.{token} {sid} {}\r\n{payload}\r\n", payload.len()).into_bytes()
    }

    #[test]
    fn acks_are_read_until_something_else() {
        let mut data = ack(5, 3, r#"{"stream":"S","seq":41}"#);
        data.extend(ack(
            6,
            3,
            r#"{"stream":"S", "seq" : 42, "duplicate": true}"#,
        ));
        data.extend(ack(7, 3, r#"{"error":{"code":503}}"#));
        let other = data.len();
        data.extend(ack(8, 9, r#"{"seq":1}"#)); // another subscription
        let (acks, end) = parse_acks(&data, 0, b"_I.x.", 3);
        assert_eq!(end, other);
        let got: Vec<_> = acks
            .iter()
            .map(|a| (a.token, a.seq, a.duplicate, a.error))
            .collect();
        assert_eq!(
            got,
            vec![
                (5, 41, false, false),
                (6, 42, true, false),
                (7, 0, false, true)
            ]
        );
        let (s, e) = acks[2].payload;
        assert_eq!(&data[s..e], br#"{"error":{"code":503}}"#);
    }

    #[test]
    fn a_split_ack_is_left_for_the_next_read() {
        let data = ack(5, 3, r#"{"seq":41}"#);
        for cut in 0..data.len() {
            let (acks, end) = parse_acks(&data[..cut], 0, b"_I.x.", 3);
            assert!(acks.is_empty());
            assert_eq!(end, 0);
        }
        assert_eq!(parse_acks(&data, 0, b"_I.x.", 3).1, data.len());
    }

    #[test]
    fn hpub_lengths_count_headers_and_payload() {
        let mut out = Vec::new();
        write_hpub(
            &mut out,
            b"a.b",
            b"_INBOX.x.",
            7,
            b"1:2",
            b"K: v\r\n",
            b"{}",
        );
        let headers = "NATS/1.0\r\nNats-Msg-Id: 1:2\r\nK: v\r\n\r\n";
        let want = format!(
            "HPUB a.b _INBOX.x.7 {} {}\r\n{headers}{{}}\r\n",
            headers.len(),
            headers.len() + 2
        );
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }
}
