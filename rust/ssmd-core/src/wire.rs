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

#[cfg(test)]
mod tests {
    use super::*;

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
