//! The NATS client protocol without I/O: bytes from the server in, operations
//! out; publishes in, bytes for the server out.
//!
//! Python (ssmd.bus.wire) owns the socket, TLS and timers; this module only
//! knows the text protocol (<https://docs.nats.io/reference/reference-protocols/nats-protocol>):
//! the server's INFO, MSG, HMSG, PING, PONG, +OK and -ERR, the client's HPUB,
//! and JetStream's PubAck replies. A batch of publishes becomes one buffer, and
//! a read from the socket is parsed in one call, so that Python touches the
//! protocol once per batch and once per read.

use std::fmt;

/// Longest control line accepted from the server (the line before a payload).
/// The server's own limit is 4 KiB; INFO lines carry cluster URLs and are longer.
pub const MAX_CONTROL_LINE: usize = 1 << 20;

/// The server broke the protocol (or sent more than this client accepts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProtocolError {}

/// One operation from the server, borrowing the parser's buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Op<'a> {
    /// INFO's JSON object.
    Info(&'a [u8]),
    /// MSG or HMSG (`headers` is the whole header block, "NATS/1.0..." included).
    Msg {
        sid: u64,
        subject: &'a [u8],
        reply: Option<&'a [u8]>,
        headers: Option<&'a [u8]>,
        payload: &'a [u8],
    },
    Ping,
    Pong,
    Ok,
    /// -ERR's text, without the quotes.
    Err(&'a [u8]),
}

/// An incremental parser of what the server sends.
#[derive(Debug, Default)]
pub struct Parser {
    buf: Vec<u8>,
    max_payload: usize,
}

impl Parser {
    /// A parser that refuses messages over `max_payload` bytes (0: no limit but
    /// memory; the server's INFO says its `max_payload`).
    pub fn new(max_payload: usize) -> Parser {
        Parser {
            buf: Vec::new(),
            max_payload,
        }
    }

    pub fn set_max_payload(&mut self, max_payload: usize) {
        self.max_payload = max_payload;
    }

    /// Bytes held back: the start of an operation not yet complete.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Forget whatever is buffered (a new connection starts clean).
    pub fn reset(&mut self) {
        self.buf.clear();
    }

    /// Takes `data` and calls `each` for every complete operation, in order;
    /// an incomplete one waits for the next call.
    pub fn receive<F>(&mut self, data: &[u8], mut each: F) -> Result<(), ProtocolError>
    where
        F: FnMut(Op<'_>),
    {
        self.buf.extend_from_slice(data);
        let mut pos = 0;
        let result = loop {
            match parse_one(&self.buf[pos..], self.max_payload) {
                Ok(Some((op, used))) => {
                    each(op);
                    pos += used;
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.buf.drain(..pos);
        result
    }
}

fn parse_one(buf: &[u8], max_payload: usize) -> Result<Option<(Op<'_>, usize)>, ProtocolError> {
    let Some(eol) = find_crlf(buf) else {
        if buf.len() > MAX_CONTROL_LINE {
            return Err(ProtocolError(format!(
                "a control line of over {MAX_CONTROL_LINE} bytes"
            )));
        }
        return Ok(None);
    };
    let line = &buf[..eol];
    let after = eol + 2;
    let (verb, args) = split_verb(line);
    match verb.to_ascii_uppercase().as_slice() {
        b"MSG" => parse_msg(buf, args, after, false, max_payload),
        b"HMSG" => parse_msg(buf, args, after, true, max_payload),
        b"PING" => Ok(Some((Op::Ping, after))),
        b"PONG" => Ok(Some((Op::Pong, after))),
        b"+OK" => Ok(Some((Op::Ok, after))),
        b"INFO" => Ok(Some((Op::Info(trim(args)), after))),
        b"-ERR" => {
            let text = trim(args);
            let text = text
                .strip_prefix(b"'")
                .and_then(|t| t.strip_suffix(b"'"))
                .unwrap_or(text);
            Ok(Some((Op::Err(text), after)))
        }
        _ => Err(ProtocolError(format!(
            "unknown operation from the server: {:?}",
            String::from_utf8_lossy(&line[..line.len().min(64)])
        ))),
    }
}

fn parse_msg<'a>(
    buf: &'a [u8],
    args: &'a [u8],
    start: usize,
    with_headers: bool,
    max_payload: usize,
) -> Result<Option<(Op<'a>, usize)>, ProtocolError> {
    let bad = || {
        ProtocolError(format!(
            "malformed {} line: {:?}",
            if with_headers { "HMSG" } else { "MSG" },
            String::from_utf8_lossy(&args[..args.len().min(128)])
        ))
    };
    let mut fields: [&[u8]; 5] = [&[]; 5];
    let mut n = 0;
    for f in args
        .split(|b| *b == b' ' || *b == b'\t')
        .filter(|f| !f.is_empty())
    {
        if n == fields.len() {
            return Err(bad());
        }
        fields[n] = f;
        n += 1;
    }
    // MSG subject sid [reply] size; HMSG subject sid [reply] hdr_size total_size
    let sizes = if with_headers { 2 } else { 1 };
    if n != 2 + sizes && n != 3 + sizes {
        return Err(bad());
    }
    let subject = fields[0];
    let sid = number(fields[1]).ok_or_else(bad)?;
    let reply = (n == 3 + sizes).then(|| fields[2]);
    let total = number(fields[n - 1]).ok_or_else(bad)?;
    let header_len = if with_headers {
        let h = number(fields[n - 2]).ok_or_else(bad)?;
        if h > total {
            return Err(bad());
        }
        h
    } else {
        0
    };
    let total = usize::try_from(total).map_err(|_| bad())?;
    if max_payload > 0 && total > max_payload {
        return Err(ProtocolError(format!(
            "a message of {total} bytes, over the server's max_payload of {max_payload}"
        )));
    }
    let end = start + total;
    if buf.len() < end + 2 {
        return Ok(None);
    }
    if &buf[end..end + 2] != b"\r\n" {
        return Err(ProtocolError("a message not followed by CRLF".into()));
    }
    let header_len = usize::try_from(header_len).map_err(|_| bad())?;
    let body = &buf[start..end];
    let (headers, payload) = if with_headers {
        (Some(&body[..header_len]), &body[header_len..])
    } else {
        (None, body)
    };
    Ok(Some((
        Op::Msg {
            sid,
            subject,
            reply,
            headers,
            payload,
        },
        end + 2,
    )))
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = buf[from..].iter().position(|b| *b == b'\n') {
        let at = from + i;
        if at > 0 && buf[at - 1] == b'\r' {
            return Some(at - 1);
        }
        from = at + 1;
    }
    None
}

fn split_verb(line: &[u8]) -> (&[u8], &[u8]) {
    match line.iter().position(|b| *b == b' ' || *b == b'\t') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &[]),
    }
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &s[start..end]
}

fn number(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    s.iter().try_fold(0u64, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

/// The status code of a header block ("NATS/1.0 503" gives 503), if any.
pub fn status(headers: &[u8]) -> Option<u16> {
    let first = headers.split(|b| *b == b'\r').next()?;
    let rest = first.strip_prefix(b"NATS/1.0")?;
    let code = trim(rest).split(|b| *b == b' ').next()?;
    number(code).and_then(|c| u16::try_from(c).ok())
}

// ---- publishing -------------------------------------------------------------------

/// One message to publish: `headers` are whole lines ("Key: value\r\n" each).
pub struct Publish<'a> {
    pub subject: &'a [u8],
    pub reply: &'a [u8],
    pub headers: &'a [u8],
    pub payload: &'a [u8],
}

/// Appends the HPUB (or PUB, with no headers) of `msg` to `out`.
pub fn encode_publish(out: &mut Vec<u8>, msg: &Publish<'_>) -> Result<(), ProtocolError> {
    check_token(msg.subject, "subject")?;
    if !msg.reply.is_empty() {
        check_token(msg.reply, "reply subject")?;
    }
    let mut num = itoa::Buffer::new();
    if msg.headers.is_empty() {
        out.extend_from_slice(b"PUB ");
        out.extend_from_slice(msg.subject);
        out.push(b' ');
        if !msg.reply.is_empty() {
            out.extend_from_slice(msg.reply);
            out.push(b' ');
        }
        out.extend_from_slice(num.format(msg.payload.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
    } else {
        const START: &[u8] = b"NATS/1.0\r\n";
        let header_len = START.len() + msg.headers.len() + 2;
        out.extend_from_slice(b"HPUB ");
        out.extend_from_slice(msg.subject);
        out.push(b' ');
        if !msg.reply.is_empty() {
            out.extend_from_slice(msg.reply);
            out.push(b' ');
        }
        out.extend_from_slice(num.format(header_len).as_bytes());
        out.push(b' ');
        out.extend_from_slice(num.format(header_len + msg.payload.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(START);
        out.extend_from_slice(msg.headers);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(msg.payload);
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Appends the header line "key: value\r\n", refusing what would break the block.
pub fn encode_header(out: &mut Vec<u8>, key: &[u8], value: &[u8]) -> Result<(), ProtocolError> {
    if key.is_empty() || key.iter().any(|b| matches!(b, b':' | b' ' | b'\r' | b'\n')) {
        return Err(ProtocolError(format!(
            "header name {:?} is empty or holds ':', a space or a line break",
            String::from_utf8_lossy(key)
        )));
    }
    if value.iter().any(|b| matches!(b, b'\r' | b'\n')) {
        return Err(ProtocolError(format!(
            "the value of header {:?} holds a line break",
            String::from_utf8_lossy(key)
        )));
    }
    out.extend_from_slice(key);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
    Ok(())
}

pub fn check_token(s: &[u8], what: &str) -> Result<(), ProtocolError> {
    if s.is_empty() || s.iter().any(|b| b.is_ascii_whitespace() || *b == 0) {
        return Err(ProtocolError(format!(
            "{what} {:?} is empty or holds whitespace",
            String::from_utf8_lossy(s)
        )));
    }
    Ok(())
}

/// The value of header `name` in a header block (the first, names compared
/// without regard to case), with surrounding spaces trimmed.
pub fn header_value<'a>(block: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let mut lines = block.split(|b| *b == b'\n');
    lines.next(); // "NATS/1.0 [status]"
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(colon) = line.iter().position(|b| *b == b':') {
            if line[..colon].eq_ignore_ascii_case(name) {
                return Some(trim(&line[colon + 1..]));
            }
        }
    }
    None
}

/// Appends the acknowledgement of one JetStream delivery: "+ACK" published to its
/// reply subject, itself replying to `confirm` when not empty (the server then
/// answers once it has processed the ack).
pub fn encode_ack(out: &mut Vec<u8>, reply: &[u8], confirm: &[u8]) -> Result<(), ProtocolError> {
    encode_publish(
        out,
        &Publish {
            subject: reply,
            reply: confirm,
            headers: b"",
            payload: b"+ACK",
        },
    )
}

// ---- JetStream deliveries -----------------------------------------------------------

/// What a JetStream ack subject says of its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckMeta {
    /// The message's stream sequence.
    pub seq: u64,
    /// When the stream stored it (ns since the epoch).
    pub stored_ns: u64,
    /// Messages left for the consumer after this one.
    pub pending: u64,
    /// The consumer's delivery sequence: one more than the previous delivery's
    /// unless a delivery was lost (or redelivered) in between.
    pub consumer_seq: u64,
}

/// The ack subject's fields:
/// `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ns>.<pending>`, or the form
/// with a domain and an account hash after `$JS.ACK` (and a random token at the end).
pub fn ack_meta(reply: &[u8]) -> Option<AckMeta> {
    let tokens: Vec<&[u8]> = reply.split(|b| *b == b'.').collect();
    if tokens.len() < 9 || tokens[0] != b"$JS" || tokens[1] != b"ACK" {
        return None;
    }
    let at = if tokens.len() == 9 { 5 } else { 7 };
    Some(AckMeta {
        seq: number(tokens.get(at)?)?,
        stored_ns: number(tokens.get(at + 2)?)?,
        pending: number(tokens.get(at + 3)?)?,
        consumer_seq: number(tokens.get(at + 1)?)?,
    })
}

// ---- JetStream PubAcks ------------------------------------------------------------

/// What JetStream answered to one publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Stored at stream sequence `seq` (`duplicate`: stored before, with the same id).
    Stored { seq: u64, duplicate: bool },
    /// Refused, with the reason.
    Refused(String),
}

#[derive(serde::Deserialize)]
struct PubAck<'a> {
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    duplicate: bool,
    #[serde(borrow, default)]
    error: Option<&'a serde_json::value::RawValue>,
}

/// JetStream's answer in a reply message: a PubAck, an error, or the server's
/// "no responders" status (no stream takes the subject).
pub fn read_reply(headers: Option<&[u8]>, payload: &[u8]) -> Reply {
    if let Some(h) = headers {
        if let Some(code) = status(h) {
            if code == 503 {
                return Reply::Refused("no responders: no stream takes the subject".into());
            }
            if payload.is_empty() {
                return Reply::Refused(format!("status {code} without a PubAck"));
            }
        }
    }
    match serde_json::from_slice::<PubAck<'_>>(payload) {
        Ok(PubAck { error: Some(e), .. }) => Reply::Refused(e.get().to_string()),
        Ok(PubAck { seq, duplicate, .. }) if seq > 0 => Reply::Stored { seq, duplicate },
        _ => Reply::Refused(format!(
            "an unreadable PubAck: {:?}",
            String::from_utf8_lossy(&payload[..payload.len().min(200)])
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(parser: &mut Parser, data: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        parser
            .receive(data, |op| out.push(format!("{op:?}")))
            .unwrap();
        out
    }

    #[test]
    fn parses_every_operation_across_split_reads() {
        let wire: &[u8] = b"INFO {\"max_payload\":1048576}\r\nPING\r\nPONG\r\n+OK\r\n-ERR 'Authorization Violation'\r\nMSG a.b 7 3\r\nabc\r\nHMSG _I.x.12 1 r 12 14\r\nNATS/1.0\r\n\r\nhi\r\n";
        let mut whole = Parser::new(0);
        let all = ops(&mut whole, wire);
        assert_eq!(all.len(), 7);
        assert_eq!(all[4], format!("{:?}", Op::Err(b"Authorization Violation")));
        for cut in 1..wire.len() {
            let mut p = Parser::new(0);
            let mut got = ops(&mut p, &wire[..cut]);
            got.extend(ops(&mut p, &wire[cut..]));
            assert_eq!(got, all, "split at {cut}");
            assert_eq!(p.buffered(), 0);
        }
    }

    #[test]
    fn message_fields() {
        let mut p = Parser::new(0);
        let mut seen = Vec::new();
        p.receive(b"HMSG s 9 reply.x 12 15\r\nNATS/1.0\r\n\r\nabc\r\n", |op| {
            if let Op::Msg {
                sid,
                subject,
                reply,
                headers,
                payload,
            } = op
            {
                seen.push((
                    sid,
                    subject.to_vec(),
                    reply.map(<[u8]>::to_vec),
                    headers.map(<[u8]>::to_vec),
                    payload.to_vec(),
                ));
            }
        })
        .unwrap();
        assert_eq!(
            seen,
            vec![(
                9,
                b"s".to_vec(),
                Some(b"reply.x".to_vec()),
                Some(b"NATS/1.0\r\n\r\n".to_vec()),
                b"abc".to_vec()
            )]
        );
    }

    #[test]
    fn refuses_garbage_and_oversized_messages() {
        assert!(Parser::new(0).receive(b"HELLO\r\n", |_| {}).is_err());
        assert!(Parser::new(0)
            .receive(b"MSG a x 3\r\nabc\r\n", |_| {})
            .is_err());
        assert!(Parser::new(0)
            .receive(b"MSG a 1 3\r\nabcd\r\n", |_| {})
            .is_err());
        assert!(Parser::new(2)
            .receive(b"MSG a 1 3\r\nabc\r\n", |_| {})
            .is_err());
        assert!(Parser::new(0)
            .receive(b"HMSG a 1 9 3\r\nabc\r\n", |_| {})
            .is_err());
    }

    #[test]
    fn encodes_what_it_parses() {
        let mut out = Vec::new();
        let mut headers = Vec::new();
        encode_header(&mut headers, b"Nats-Msg-Id", b"c:1").unwrap();
        encode_publish(
            &mut out,
            &Publish {
                subject: b"env.feed.raw",
                reply: b"_INBOX.a.1",
                headers: &headers,
                payload: b"{}",
            },
        )
        .unwrap();
        encode_publish(
            &mut out,
            &Publish {
                subject: b"x",
                reply: b"",
                headers: b"",
                payload: b"",
            },
        )
        .unwrap();
        assert_eq!(
            out,
            b"HPUB env.feed.raw _INBOX.a.1 30 32\r\nNATS/1.0\r\nNats-Msg-Id: c:1\r\n\r\n{}\r\nPUB x 0\r\n\r\n".to_vec()
        );
        // The server's MSG of it parses back (the same layout with a sid).
        let mut p = Parser::new(0);
        let got = ops(
            &mut p,
            b"HMSG env.feed.raw 1 _INBOX.a.1 30 32\r\nNATS/1.0\r\nNats-Msg-Id: c:1\r\n\r\n{}\r\n",
        );
        assert_eq!(got.len(), 1);
        assert!(encode_publish(
            &mut out,
            &Publish {
                subject: b"a b",
                reply: b"",
                headers: b"",
                payload: b""
            }
        )
        .is_err());
        assert!(encode_header(&mut headers, b"K", b"v\r\nX: y").is_err());
    }

    #[test]
    fn deliveries_and_acks() {
        let want = Some(AckMeta {
            seq: 42,
            stored_ns: 1_700_000_000_000_000_123,
            pending: 7,
            consumer_seq: 40,
        });
        assert_eq!(
            ack_meta(b"$JS.ACK.S.archiver.1.42.40.1700000000000000123.7"),
            want
        );
        assert_eq!(
            ack_meta(b"$JS.ACK.dom.ACCHASH.S.archiver.1.42.40.1700000000000000123.7.tok"),
            want
        );
        assert_eq!(ack_meta(b"_INBOX.x.1"), None);
        assert_eq!(ack_meta(b"$JS.ACK.S.c.1.x.40.1.7"), None);
        let block = b"NATS/1.0\r\nSsmd-Receive-Ns: 17\r\nssmd-conn-id:  3 \r\n\r\n";
        assert_eq!(header_value(block, b"Ssmd-Receive-Ns"), Some(&b"17"[..]));
        assert_eq!(header_value(block, b"Ssmd-Conn-Id"), Some(&b"3"[..]));
        assert_eq!(header_value(block, b"Other"), None);
        let mut out = Vec::new();
        encode_ack(&mut out, b"$JS.ACK.a", b"").unwrap();
        encode_ack(&mut out, b"$JS.ACK.b", b"_I.c.9").unwrap();
        assert_eq!(
            out,
            b"PUB $JS.ACK.a 4\r\n+ACK\r\nPUB $JS.ACK.b _I.c.9 4\r\n+ACK\r\n".to_vec()
        );
    }

    #[test]
    fn pubacks() {
        assert_eq!(
            read_reply(None, br#"{"stream":"S","seq":12,"duplicate":true}"#),
            Reply::Stored {
                seq: 12,
                duplicate: true
            }
        );
        assert_eq!(
            read_reply(None, br#"{"stream":"S","seq":3}"#),
            Reply::Stored {
                seq: 3,
                duplicate: false
            }
        );
        assert!(
            matches!(read_reply(Some(b"NATS/1.0 503\r\n\r\n"), b""), Reply::Refused(w) if w.contains("no responders"))
        );
        assert!(
            matches!(read_reply(None, br#"{"error":{"code":400,"description":"bad"}}"#), Reply::Refused(w) if w.contains("bad"))
        );
        assert!(matches!(read_reply(None, b"nope"), Reply::Refused(_)));
        assert_eq!(status(b"NATS/1.0 100 Idle Heartbeat\r\n\r\n"), Some(100));
        assert_eq!(status(b"NATS/1.0\r\nA: b\r\n\r\n"), None);
    }
}
