//! What a WebSocket client reads, without I/O (RFC 6455, no extension negotiated).
//!
//! Python (ssmd.venues.websocket) owns the socket, TLS, the opening handshake and
//! every frame the client writes; this module only reads. One read from the socket
//! goes in; its whole messages, pings and pongs come out in one call, and the end of
//! the connection once the server closed it or broke the protocol. The server's
//! frames are unmasked; a message may come in fragments with control frames between
//! them. Text is not checked as UTF-8 here: a venue's malformed frame is kept raw,
//! as received, and counted downstream.
//!
//! Memory: at most one frame's bytes wait for the rest of the frame, and a message's
//! fragments are refused past `max_size` before their bytes are buffered.

/// The client closes with this code when the server broke the protocol.
pub const PROTOCOL_ERROR: u16 = 1002;
/// ... when a close reason is not UTF-8.
pub const INVALID_DATA: u16 = 1007;
/// ... when a message is over the reader's `max_size`.
pub const MESSAGE_TOO_BIG: u16 = 1009;
/// The code reported for a close frame without one.
pub const NO_STATUS: u16 = 1005;

/// One thing read, borrowing the reader's or the input's bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A whole text or binary message.
    Message(&'a [u8]),
    Ping(&'a [u8]),
    Pong(&'a [u8]),
}

/// How the connection ended, as far as reading goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    /// The server's close code, or the code the client closes with.
    pub code: u16,
    pub reason: String,
    /// True: the server sent a close frame. False: it broke the protocol.
    pub by_server: bool,
}

enum Step {
    Need,
    Frame {
        head: usize,
        len: usize,
        fin: bool,
        opcode: u8,
    },
}

/// An incremental reader of the frames a server sends to a client.
#[derive(Debug)]
pub struct FrameReader {
    max_size: usize,
    pending: Vec<u8>,
    fragments: Vec<u8>,
    in_message: bool,
    end: Option<End>,
}

impl FrameReader {
    /// A reader that refuses messages over `max_size` bytes (closing with 1009).
    pub fn new(max_size: usize) -> FrameReader {
        FrameReader {
            max_size,
            pending: Vec::new(),
            fragments: Vec::new(),
            in_message: false,
            end: None,
        }
    }

    /// How the connection ended, once it did.
    pub fn end(&self) -> Option<&End> {
        self.end.as_ref()
    }

    /// Bytes held for a frame or a message not yet whole.
    pub fn buffered(&self) -> usize {
        self.pending.len() + self.fragments.len()
    }

    /// Reads `input`, calling `on` for each message, ping and pong in order. Returns
    /// the end once the connection ended; nothing is read after it.
    pub fn read(&mut self, input: &[u8], on: &mut impl FnMut(Event<'_>)) -> Option<&End> {
        if self.end.is_some() {
            return self.end.as_ref();
        }
        if self.pending.is_empty() {
            let used = self.parse(input, on);
            if self.end.is_none() {
                self.pending.extend_from_slice(&input[used..]);
            }
        } else {
            let mut buf = std::mem::take(&mut self.pending);
            buf.extend_from_slice(input);
            let used = self.parse(&buf, on);
            if self.end.is_none() {
                buf.drain(..used);
                self.pending = buf; // keeps its capacity for the next partial frame
            }
        }
        self.end.as_ref()
    }

    fn parse(&mut self, buf: &[u8], on: &mut impl FnMut(Event<'_>)) -> usize {
        let mut at = 0;
        while self.end.is_none() {
            match self.header(&buf[at..]) {
                Ok(Step::Need) => break,
                Ok(Step::Frame {
                    head,
                    len,
                    fin,
                    opcode,
                }) => {
                    let payload = &buf[at + head..at + head + len];
                    at += head + len;
                    if let Err(end) = self.frame(opcode, fin, payload, on) {
                        self.end = Some(end);
                    }
                }
                Err(end) => self.end = Some(end),
            }
        }
        at
    }

    /// The next frame's header, once its payload is whole too.
    fn header(&self, b: &[u8]) -> Result<Step, End> {
        if b.len() < 2 {
            return Ok(Step::Need);
        }
        let (b0, b1) = (b[0], b[1]);
        let fin = b0 & 0x80 != 0;
        let opcode = b0 & 0x0f;
        if b0 & 0x70 != 0 {
            return Err(failed(
                PROTOCOL_ERROR,
                "reserved bits set (no extension was agreed)",
            ));
        }
        if b1 & 0x80 != 0 {
            return Err(failed(PROTOCOL_ERROR, "a masked frame from the server"));
        }
        let (head, len) = match b1 & 0x7f {
            126 if b.len() < 4 => return Ok(Step::Need),
            126 => (4, u64::from(u16::from_be_bytes([b[2], b[3]]))),
            127 if b.len() < 10 => return Ok(Step::Need),
            127 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&b[2..10]);
                (10, u64::from_be_bytes(n))
            }
            n => (2, u64::from(n)),
        };
        match opcode {
            0..=2 => {
                let before = if opcode == 0 { self.fragments.len() } else { 0 };
                let size = len.saturating_add(before as u64);
                if size > self.max_size as u64 {
                    return Err(failed(
                        MESSAGE_TOO_BIG,
                        &format!("a message of {size} bytes, over {}", self.max_size),
                    ));
                }
            }
            8..=10 => {
                if !fin {
                    return Err(failed(PROTOCOL_ERROR, "a fragmented control frame"));
                }
                if len > 125 {
                    return Err(failed(PROTOCOL_ERROR, "a control frame over 125 bytes"));
                }
            }
            other => {
                return Err(failed(PROTOCOL_ERROR, &format!("unknown opcode {other}")));
            }
        }
        let len = len as usize; // at most max_size or 125 here
        if b.len() < head + len {
            return Ok(Step::Need);
        }
        Ok(Step::Frame {
            head,
            len,
            fin,
            opcode,
        })
    }

    fn frame(
        &mut self,
        opcode: u8,
        fin: bool,
        payload: &[u8],
        on: &mut impl FnMut(Event<'_>),
    ) -> Result<(), End> {
        match opcode {
            1 | 2 => {
                if self.in_message {
                    return Err(failed(
                        PROTOCOL_ERROR,
                        "a new message inside a fragmented one",
                    ));
                }
                if fin {
                    on(Event::Message(payload));
                } else {
                    self.in_message = true;
                    self.fragments.clear();
                    self.fragments.extend_from_slice(payload);
                }
            }
            0 => {
                if !self.in_message {
                    return Err(failed(
                        PROTOCOL_ERROR,
                        "a continuation frame outside a message",
                    ));
                }
                self.fragments.extend_from_slice(payload);
                if fin {
                    self.in_message = false;
                    on(Event::Message(&self.fragments));
                    self.fragments = Vec::new(); // a large message's memory is not kept
                }
            }
            8 => return Err(close(payload)),
            9 => on(Event::Ping(payload)),
            _ => on(Event::Pong(payload)),
        }
        Ok(())
    }
}

fn failed(code: u16, reason: &str) -> End {
    End {
        code,
        reason: reason.to_owned(),
        by_server: false,
    }
}

/// The end a close frame's payload says.
fn close(payload: &[u8]) -> End {
    match payload {
        [] => End {
            code: NO_STATUS,
            reason: String::new(),
            by_server: true,
        },
        [_] => failed(PROTOCOL_ERROR, "a close frame of one byte"),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
                return failed(PROTOCOL_ERROR, &format!("close code {code} is not allowed"));
            }
            match std::str::from_utf8(reason) {
                Ok(text) => End {
                    code,
                    reason: text.to_owned(),
                    by_server: true,
                },
                Err(_) => failed(INVALID_DATA, "a close reason that is not UTF-8"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => out.push(n as u8),
            n if n < 65536 => {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        out
    }

    fn events(reader: &mut FrameReader, input: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        reader.read(input, &mut |ev| {
            out.push(match ev {
                Event::Message(m) => format!("msg {}", String::from_utf8_lossy(m)),
                Event::Ping(p) => format!("ping {}", String::from_utf8_lossy(p)),
                Event::Pong(p) => format!("pong {}", String::from_utf8_lossy(p)),
            })
        });
        out
    }

    #[test]
    fn whole_messages_in_one_read_and_byte_by_byte() {
        let mut wire = frame(true, 1, b"a");
        wire.extend(frame(true, 9, b"p"));
        wire.extend(frame(true, 2, &[b'x'; 300]));
        wire.extend(frame(true, 10, b"q"));
        let want = vec![
            "msg a".to_owned(),
            "ping p".to_owned(),
            format!("msg {}", "x".repeat(300)),
            "pong q".to_owned(),
        ];
        let mut reader = FrameReader::new(1 << 20);
        assert_eq!(events(&mut reader, &wire), want);
        assert_eq!(reader.buffered(), 0);
        let mut reader = FrameReader::new(1 << 20);
        let got: Vec<String> = wire
            .iter()
            .flat_map(|b| events(&mut reader, std::slice::from_ref(b)))
            .collect();
        assert_eq!(got, want);
        assert!(reader.end().is_none());
    }

    #[test]
    fn fragments_with_a_ping_between() {
        let mut wire = frame(false, 1, b"he");
        wire.extend(frame(true, 9, b""));
        wire.extend(frame(false, 0, b"ll"));
        wire.extend(frame(true, 0, b"o"));
        let mut reader = FrameReader::new(5);
        assert_eq!(events(&mut reader, &wire), vec!["ping ", "msg hello"]);
        assert_eq!(reader.buffered(), 0);
    }

    #[test]
    fn sixty_four_bit_length() {
        let payload = vec![b'y'; 70_000];
        let mut reader = FrameReader::new(1 << 20);
        let got = events(&mut reader, &frame(true, 2, &payload));
        assert_eq!(got, vec![format!("msg {}", "y".repeat(70_000))]);
    }

    #[test]
    fn too_big_is_refused_before_its_bytes_arrive() {
        let mut reader = FrameReader::new(100);
        let wire = frame(true, 1, &[b'z'; 101]);
        assert!(events(&mut reader, &wire[..4]).is_empty());
        let end = reader.end().unwrap();
        assert_eq!((end.code, end.by_server), (MESSAGE_TOO_BIG, false));
        assert_eq!(reader.buffered(), 0);
        // Fragments count together.
        let mut reader = FrameReader::new(5);
        let mut wire = frame(false, 1, b"abc");
        wire.extend(frame(true, 0, b"def"));
        events(&mut reader, &wire);
        assert_eq!(reader.end().unwrap().code, MESSAGE_TOO_BIG);
    }

    #[test]
    fn close_frames() {
        let mut reader = FrameReader::new(100);
        let mut payload = 1001u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"going away");
        let mut wire = frame(true, 1, b"last");
        wire.extend(frame(true, 8, &payload));
        wire.extend(frame(true, 1, b"after the close"));
        assert_eq!(events(&mut reader, &wire), vec!["msg last"]);
        let end = reader.end().unwrap().clone();
        assert_eq!(
            end,
            End {
                code: 1001,
                reason: "going away".into(),
                by_server: true
            }
        );
        assert!(events(&mut reader, &frame(true, 1, b"more")).is_empty());
        let mut reader = FrameReader::new(100);
        events(&mut reader, &frame(true, 8, b""));
        assert_eq!(reader.end().unwrap().code, NO_STATUS);
        for bad in [&[3u8][..], &[3, 0xed], &[0x03, 0xe8, 0xff]] {
            let mut reader = FrameReader::new(100);
            events(&mut reader, &frame(true, 8, bad));
            assert!(!reader.end().unwrap().by_server, "{bad:?}");
        }
    }

    #[test]
    fn protocol_errors_end_the_connection() {
        let masked = [0x81u8, 0x81, 1, 2, 3, 4, b'a' ^ 1];
        let long_ping = frame(true, 9, &[0; 126]);
        let reserved = [0xc1u8, 0];
        let unknown = [0x83u8, 0];
        let stray = frame(true, 0, b"x");
        let mut nested = frame(false, 1, b"a");
        nested.extend(frame(true, 1, b"b"));
        let split_ping = frame(false, 9, b"");
        for wire in [
            &masked[..],
            &long_ping,
            &reserved,
            &unknown,
            &stray,
            &nested,
            &split_ping,
        ] {
            let mut reader = FrameReader::new(100);
            events(&mut reader, wire);
            let end = reader.end().unwrap();
            assert_eq!(
                (end.code, end.by_server),
                (PROTOCOL_ERROR, false),
                "{wire:?}"
            );
        }
    }
}
