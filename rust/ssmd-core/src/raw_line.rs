//! The raw archive's line format: one JSON object per frame, written by the
//! archiver ([`raw_line`]) and read back by replays and the data API
//! ([`parse_raw_line`]).
//!
//! ```text
//! {"ts":MS,"rns":NS,"type":T,"data":FRAME,"conn":C,"seq":N}
//! ```
//!
//! FRAME is the frame byte for byte when it is one line of valid JSON; otherwise
//! the frame is kept as `"data_text"` (a JSON string) or `"data_b64"`. The reader
//! cuts a spliced frame out rather than parsing and writing it again: nothing
//! after it holds frame bytes, so the last `,"conn":` ends it.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize as DeriveDeserialize;
use std::borrow::Cow;
use std::fmt;

/// Appends one raw archive line to `out` and says whether the frame went in as
/// it is (one line of valid JSON).
///
/// ```text
/// {"ts":MS,"rns":NS,"type":T,"data":FRAME,"conn":C,"seq":N}
/// ```
///
/// A frame that is not one line of valid JSON is kept as `data_text` (valid
/// UTF-8) or `data_b64`. A message from a subject (`subject` given) is not a
/// frame: it is always kept as `data_b64`, and its subject is recorded.
pub fn raw_line(
    out: &mut Vec<u8>,
    frame: &[u8],
    msgtype: &str,
    receive_ns: u64,
    conn: Option<&str>,
    seq: u64,
    subject: Option<&str>,
) -> bool {
    let mut num = itoa::Buffer::new();
    out.extend_from_slice(b"{\"ts\":");
    out.extend_from_slice(num.format(receive_ns / 1_000_000).as_bytes());
    out.extend_from_slice(b",\"rns\":");
    out.extend_from_slice(num.format(receive_ns).as_bytes());
    out.extend_from_slice(b",\"type\":");
    json_string(out, msgtype);
    let spliced = subject.is_none() && is_one_json_line(frame);
    if spliced {
        out.extend_from_slice(b",\"data\":");
        out.extend_from_slice(frame);
    } else {
        match std::str::from_utf8(frame) {
            Ok(text) if subject.is_none() => {
                out.extend_from_slice(b",\"data_text\":");
                json_string(out, text);
            }
            _ => {
                out.extend_from_slice(b",\"data_b64\":\"");
                base64(out, frame);
                out.push(b'"');
            }
        }
    }
    out.extend_from_slice(b",\"conn\":");
    match conn {
        None => out.extend_from_slice(b"null"),
        Some(c) if is_json_integer(c) => out.extend_from_slice(c.as_bytes()),
        Some(c) => json_string(out, c),
    }
    out.extend_from_slice(b",\"seq\":");
    out.extend_from_slice(num.format(seq).as_bytes());
    if let Some(subject) = subject {
        out.extend_from_slice(b",\"subject\":");
        json_string(out, subject);
    }
    out.extend_from_slice(b"}\n");
    spliced
}

fn is_json_integer(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty() && b.iter().all(u8::is_ascii_digit) && (b.len() == 1 || b[0] != b'0')
}

fn json_string(out: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail.
    serde_json::to_writer(&mut *out, s).expect("write to Vec");
}

/// One line of JSON that strict readers accept: valid UTF-8, no line breaks,
/// string escapes that are real characters (no lone surrogates), finite numbers.
pub fn is_one_json_line(frame: &[u8]) -> bool {
    if frame.contains(&b'\n') || frame.contains(&b'\r') {
        return false;
    }
    let Ok(text) = std::str::from_utf8(frame) else {
        return false;
    };
    serde_json::from_str::<Checked>(text).is_ok()
}

/// Deserializes any JSON value and keeps nothing: serde_json checks escapes
/// and number ranges only for values it is asked to read, so this reads them all.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Checked, E> {
        if v.is_finite() {
            Ok(Checked)
        } else {
            Err(E::custom("number out of range"))
        }
    }
    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_entry::<Checked, Checked>()?.is_some() {}
        Ok(Checked)
    }
}

/// Standard base64 with padding (RFC 4648 section 4).
fn base64(out: &mut Vec<u8>, data: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for group in data.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextet = |i: u32| ALPHABET[((n >> (18 - 6 * i)) & 63) as usize];
        out.push(sextet(0));
        out.push(sextet(1));
        out.push(if group.len() > 1 { sextet(2) } else { b'=' });
        out.push(if group.len() > 2 { sextet(3) } else { b'=' });
    }
}

/// One raw archive line read back.
#[derive(Debug, Clone, PartialEq)]
pub struct RawLine<'a> {
    pub receive_ns: u64,
    pub msgtype: String,
    /// The connection id as text (the writer stores an integer id as a number).
    pub conn: Option<String>,
    /// The stream sequence it was archived from.
    pub seq: u64,
    /// The bytes as received.
    pub frame: Cow<'a, [u8]>,
}

const DATA_KEY: &[u8] = b",\"data\":";
const CONN_KEY: &[u8] = b",\"conn\":";

#[derive(DeriveDeserialize)]
struct Head {
    rns: u64,
    #[serde(rename = "type")]
    msgtype: String,
    data_text: Option<String>,
    data_b64: Option<String>,
}

#[derive(DeriveDeserialize)]
struct Tail {
    conn: Option<Conn>,
    seq: u64,
}

#[derive(DeriveDeserialize)]
#[serde(untagged)]
enum Conn {
    Number(u64),
    Text(String),
}

/// Reads one raw archive line (without its newline); the error says what is wrong.
pub fn parse_raw_line(line: &[u8]) -> Result<RawLine<'_>, String> {
    let tail_at = rfind(line, CONN_KEY).ok_or("no \"conn\" field")?;
    let mut tail = Vec::with_capacity(line.len() - tail_at);
    tail.push(b'{');
    tail.extend_from_slice(&line[tail_at + 1..]);
    let tail: Tail = serde_json::from_slice(&tail).map_err(|e| format!("after \"conn\": {e}"))?;
    let data_at = find(&line[..tail_at], DATA_KEY);
    let head_end = data_at.unwrap_or(tail_at);
    let mut head = Vec::with_capacity(head_end + 1);
    head.extend_from_slice(&line[..head_end]);
    head.push(b'}');
    let head: Head = serde_json::from_slice(&head).map_err(|e| head_error(&head, e))?;
    let frame = match (data_at, head.data_text, head.data_b64) {
        (Some(at), _, _) => Cow::Borrowed(&line[at + DATA_KEY.len()..tail_at]),
        (None, Some(text), _) => Cow::Owned(text.into_bytes()),
        (None, None, Some(b64)) => Cow::Owned(base64_decode(b64.as_bytes())?),
        (None, None, None) => return Err("no \"data\", \"data_text\" or \"data_b64\" field".into()),
    };
    Ok(RawLine {
        receive_ns: head.rns,
        msgtype: head.msgtype,
        conn: tail.conn.map(|c| match c {
            Conn::Number(n) => n.to_string(),
            Conn::Text(t) => t,
        }),
        seq: tail.seq,
        frame,
    })
}

/// Which field of the line's head is wrong, when serde's error does not say.
fn head_error(head: &[u8], err: serde_json::Error) -> String {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(head) else {
        return format!("before the frame: {err}");
    };
    match (fields.get("rns"), fields.get("type")) {
        (Some(rns), _) if !rns.is_u64() => format!("\"rns\" is {rns}, not a time in ns"),
        (_, Some(t)) if !t.is_string() => format!("\"type\" is {t}, not a frame kind"),
        _ => format!("before the frame: {err}"),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// Standard base64 with padding, as [`base64`] writes it.
fn base64_decode(text: &[u8]) -> Result<Vec<u8>, String> {
    fn sextet(c: u8) -> Result<u32, String> {
        Ok(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return Err(format!("{:?} is not a base64 character", c as char)),
        }
        .into())
    }
    if text.len() % 4 != 0 {
        return Err(format!(
            "base64 of {} characters, not a multiple of 4",
            text.len()
        ));
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for (i, group) in text.chunks(4).enumerate() {
        let last = i + 1 == text.len() / 4;
        let pad = group.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return Err("misplaced base64 padding".into());
        }
        let mut n = 0u32;
        for &c in &group[..4 - pad] {
            n = (n << 6) | sextet(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(frame: &[u8], conn: Option<&str>, subject: Option<&str>) -> (String, bool) {
        let mut out = Vec::new();
        let ok = raw_line(
            &mut out,
            frame,
            "trade",
            1_700_000_000_123_456_789,
            conn,
            7,
            subject,
        );
        (String::from_utf8(out).unwrap(), ok)
    }

    fn json(s: &str) -> serde_json::Value {
        serde_json::from_str(s.trim_end()).unwrap()
    }

    #[test]
    fn a_json_frame_is_spliced_in_byte_for_byte() {
        let frame = br#"{"type":"trade","msg":{"yes_price_dollars":"0.4200"}}"#;
        let (l, ok) = line(frame, Some("3"), None);
        assert!(ok);
        assert!(l.ends_with('\n') && l.matches('\n').count() == 1);
        assert!(l.contains(std::str::from_utf8(frame).unwrap()));
        let v = json(&l);
        assert_eq!(v["ts"], 1_700_000_000_123u64);
        assert_eq!(v["rns"], 1_700_000_000_123_456_789u64);
        assert_eq!(v["conn"], 3);
        assert_eq!(v["seq"], 7);
    }

    #[test]
    fn frames_that_are_not_one_json_line_are_kept_losslessly() {
        for frame in [
            &b"{\"a\":\n1}"[..],
            b"{\"a\":1",
            b"\"\\ud800\"",
            b"1e400",
            b"[1,]",
        ] {
            let (l, ok) = line(frame, None, None);
            assert!(!ok, "{frame:?}");
            let v = json(&l);
            assert_eq!(v["data_text"].as_str().unwrap().as_bytes(), frame);
            assert!(v["conn"].is_null());
        }
        let (l, ok) = line(b"\xff\xfe{", None, None);
        assert!(!ok);
        assert_eq!(json(&l)["data_b64"], "//57");
    }

    #[test]
    fn a_connection_id_that_is_not_a_json_integer_is_a_string() {
        assert_eq!(json(&line(b"1", Some("007"), None).0)["conn"], "007");
        assert_eq!(json(&line(b"1", Some("a\"b"), None).0)["conn"], "a\"b");
        assert_eq!(json(&line(b"1", Some("0"), None).0)["conn"], 0);
    }

    #[test]
    fn a_message_from_a_subject_is_kept_in_base64_with_its_subject() {
        let (l, ok) = line(b"{}", None, Some("env.feed.trade.X"));
        assert!(!ok);
        let v = json(&l);
        assert_eq!(v["data_b64"], "e30=");
        assert_eq!(v["subject"], "env.feed.trade.X");
    }

    #[test]
    fn base64_matches_the_standard() {
        for (data, want) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
        ] {
            let mut out = Vec::new();
            base64(&mut out, data);
            assert_eq!(out, want.as_bytes());
        }
    }

    fn read(frame: &[u8], conn: Option<&str>, subject: Option<&str>) -> RawLine<'static> {
        let (text, _) = line(frame, conn, subject);
        let parsed = parse_raw_line(text.trim_end().as_bytes()).unwrap();
        RawLine {
            frame: Cow::Owned(parsed.frame.into_owned()),
            ..parsed
        }
    }

    #[test]
    fn every_line_written_reads_back_as_written() {
        let frames: [&[u8]; 7] = [
            br#"{"type":"trade","msg":{"yes_price":50}}"#,
            b"not json at all",
            b"{\"a\":1}\n{\"b\":2}",
            b"\xff\xfe binary",
            b"",
            br#"{"k":",\"conn\":1,\"data\":2"}"#,
            br#"{"type":"x","conn":2,"seq":3,"data":4}"#,
        ];
        for frame in frames {
            for conn in [None, Some("17"), Some("0x1f"), Some("007")] {
                let got = read(frame, conn, None);
                assert_eq!(got.frame.as_ref(), frame);
                assert_eq!(got.conn.as_deref(), conn);
                assert_eq!(got.receive_ns, 1_700_000_000_123_456_789);
                assert_eq!(got.msgtype, "trade");
                assert_eq!(got.seq, 7);
            }
        }
        let quarantined = read(b"\x00\x01", None, Some("a.b"));
        assert_eq!(quarantined.frame.as_ref(), b"\x00\x01");
    }

    #[test]
    fn a_spliced_frame_is_borrowed_from_the_line() {
        let (text, spliced) = line(br#"{"x":1}"#, Some("3"), None);
        assert!(spliced);
        let got = parse_raw_line(text.trim_end().as_bytes()).unwrap();
        assert!(matches!(got.frame, Cow::Borrowed(_)));
    }

    #[test]
    fn what_is_not_a_raw_line_is_an_error_that_says_why() {
        for (bad, why) in [
            (&b"{}"[..], "conn"),
            (br#"{"ts":1,"rns":2,"type":"t","data":{},"conn":1}"#, "seq"),
            (br#"{"ts":1,"type":"t","data":{},"conn":1,"seq":2}"#, "rns"),
            (
                br#"{"ts":1,"rns":"x","type":"t","data":{},"conn":1,"seq":2}"#,
                "\"rns\" is \"x\"",
            ),
            (
                br#"{"ts":1,"rns":2,"type":3,"data":{},"conn":1,"seq":2}"#,
                "\"type\" is 3",
            ),
            (br#"{"ts":1,"rns":2,"type":"t","conn":1,"seq":2}"#, "data"),
            (
                br#"{"ts":1,"rns":2,"type":"t","data_b64":"a?==","conn":1,"seq":2}"#,
                "base64",
            ),
        ] {
            let err = parse_raw_line(bad).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn base64_decodes_what_it_encodes() {
        for len in 0..40u8 {
            let data: Vec<u8> = (0..len).map(|i| i.wrapping_mul(97)).collect();
            let mut text = Vec::new();
            base64(&mut text, &data);
            assert_eq!(base64_decode(&text).unwrap(), data);
        }
        assert!(base64_decode(b"QQ==QQ==").is_err());
        assert!(base64_decode(b"QQ=").is_err());
    }
}
