//! JetStream publishing without I/O: an `Outbox` of messages to publish and the
//! `Window` of those sent and not yet acked.
//!
//! An outbox keeps its messages' subjects, header lines and payloads in one
//! buffer, so that a batch of thousands of frames and records is one object on
//! the Python side rather than one per message. The window gives each message
//! it sends a token (the tail of its reply subject), matches the PubAcks that
//! come back by token, and hands the unacked messages back, in the order they
//! were sent, for a replay after a failure. Python (ssmd.bus.publisher) owns the
//! socket, the timers and the decision to replay.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::nats::{check_token, encode_header, encode_publish, ProtocolError, Publish};

/// The header JetStream de-duplicates on.
pub const MSG_ID: &[u8] = b"Nats-Msg-Id";

#[derive(Clone, Copy, Debug)]
struct Span {
    start: u32,
    end: u32,
}

#[derive(Clone, Debug)]
struct Out {
    subject: Span,
    /// Every header line, the Nats-Msg-Id line first.
    headers: Span,
    /// The message id, inside `headers`.
    id: Span,
    payload: Span,
    receive_ns: u64,
    frame: bool,
}

/// Messages to publish, in order.
#[derive(Clone, Debug, Default)]
pub struct Outbox {
    bytes: Vec<u8>,
    msgs: Vec<Out>,
    payload_bytes: usize,
}

impl Outbox {
    pub fn with_capacity(messages: usize, bytes: usize) -> Outbox {
        Outbox {
            bytes: Vec::with_capacity(bytes),
            msgs: Vec::with_capacity(messages),
            payload_bytes: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    /// The sum of the payloads' sizes.
    pub fn payload_bytes(&self) -> usize {
        self.payload_bytes
    }

    /// Adds a message. `header_lines` are further header lines, already encoded
    /// ("Key: value\r\n" ...), sent after the Nats-Msg-Id line. `frame` marks a raw
    /// frame, whose acks the window counts apart. Nothing is added on an error.
    pub fn push(
        &mut self,
        subject: &[u8],
        msg_id: &[u8],
        header_lines: &[u8],
        payload: &[u8],
        receive_ns: u64,
        frame: bool,
    ) -> Result<(), ProtocolError> {
        check_token(subject, "subject")?;
        let mut id_line = Vec::with_capacity(MSG_ID.len() + msg_id.len() + 4);
        encode_header(&mut id_line, MSG_ID, msg_id)?;
        let size = subject.len() + id_line.len() + header_lines.len() + payload.len();
        if u32::try_from(self.bytes.len() + size).is_err() {
            return Err(ProtocolError("an outbox holds at most 4 GiB".to_string()));
        }
        let at = |n: usize| n as u32; // in range: checked above
        let start = self.bytes.len();
        self.bytes.extend_from_slice(subject);
        let headers = self.bytes.len();
        self.bytes.extend_from_slice(&id_line);
        self.bytes.extend_from_slice(header_lines);
        let body = self.bytes.len();
        self.bytes.extend_from_slice(payload);
        let id = headers + MSG_ID.len() + 2;
        self.payload_bytes += payload.len();
        self.msgs.push(Out {
            subject: Span {
                start: at(start),
                end: at(headers),
            },
            headers: Span {
                start: at(headers),
                end: at(body),
            },
            id: Span {
                start: at(id),
                end: at(id + msg_id.len()),
            },
            payload: Span {
                start: at(body),
                end: at(self.bytes.len()),
            },
            receive_ns,
            frame,
        });
        Ok(())
    }

    /// Appends every message of `other`, in order.
    pub fn extend(&mut self, other: &Outbox) -> Result<(), ProtocolError> {
        for i in 0..other.len() {
            self.copy_from(other, i)?;
        }
        Ok(())
    }

    fn copy_from(&mut self, other: &Outbox, i: usize) -> Result<(), ProtocolError> {
        self.push(
            other.subject(i),
            other.msg_id(i),
            other.header_lines(i),
            other.payload(i),
            other.receive_ns(i),
            other.is_frame(i),
        )
    }

    fn get(&self, s: Span) -> &[u8] {
        &self.bytes[s.start as usize..s.end as usize]
    }

    pub fn subject(&self, i: usize) -> &[u8] {
        self.get(self.msgs[i].subject)
    }

    pub fn msg_id(&self, i: usize) -> &[u8] {
        self.get(self.msgs[i].id)
    }

    /// The header lines after the Nats-Msg-Id line.
    pub fn header_lines(&self, i: usize) -> &[u8] {
        let m = &self.msgs[i];
        let skip = MSG_ID.len() + 2 + m.id.len() + 2;
        &self.get(m.headers)[skip..]
    }

    pub fn payload(&self, i: usize) -> &[u8] {
        self.get(self.msgs[i].payload)
    }

    pub fn receive_ns(&self, i: usize) -> u64 {
        self.msgs[i].receive_ns
    }

    pub fn is_frame(&self, i: usize) -> bool {
        self.msgs[i].frame
    }

    /// The size of messages `start..end`: subjects, headers and payloads.
    fn run_bytes(&self, start: usize, end: usize) -> usize {
        match (
            self.msgs.get(start),
            end.checked_sub(1).and_then(|e| self.msgs.get(e)),
        ) {
            (Some(first), Some(last)) if start < end => {
                (last.payload.end - first.subject.start) as usize
            }
            _ => 0,
        }
    }

    /// The end of the run from `start` that takes at most `count` messages (one at
    /// least) and `bytes` of payload (or its first message alone, if that is bigger).
    pub fn end_within(&self, start: usize, count: usize, bytes: usize) -> usize {
        let end = self.len().min(start + count.max(1));
        let mut size = 0usize;
        for j in start..end {
            size += self.msgs[j].payload.len();
            if size > bytes && j > start {
                return j;
            }
        }
        end
    }

    fn encode(&self, i: usize, reply: &[u8], out: &mut Vec<u8>) -> Result<(), ProtocolError> {
        let m = &self.msgs[i];
        encode_publish(
            out,
            &Publish {
                subject: self.get(m.subject),
                reply,
                headers: self.get(m.headers),
                payload: self.get(m.payload),
            },
        )
    }
}

impl Span {
    fn len(self) -> usize {
        (self.end - self.start) as usize
    }
}

struct Pending {
    outbox: Arc<Outbox>,
    index: u32,
    sent: f64,
}

/// What one read's PubAcks and refusals did to the window.
#[derive(Debug, Default)]
pub struct Acked {
    pub acked: usize,
    pub duplicates: usize,
    /// Raw frames among the acked messages, and the newest receive time among them.
    pub frames: usize,
    pub newest_frame_ns: u64,
    /// The receive time of each acked frame, when the window keeps them.
    pub frame_times: Vec<u64>,
    /// Why JetStream refused a message that is still unacked.
    pub refused: Vec<String>,
    /// (message id, subject) of each message a replay found stored ahead of a
    /// message published before it.
    pub reordered: Vec<(String, String)>,
}

/// The messages sent and not yet acked, by token, in the order they were sent.
///
/// Tokens are consecutive: the message sent with token t is at t - base.
pub struct Window {
    reply_prefix: Vec<u8>,
    base: u64,
    pending: VecDeque<Option<Pending>>,
    count: usize,
    bytes: usize,
    next_token: u64,
    keep_frame_times: bool,
    /// The replay under way: its first token, and whether it stored a message anew.
    replay_from: Option<u64>,
    replay_stored_new: bool,
    /// The first token refused since the last replay began.
    refused_at: Option<u64>,
}

impl Window {
    pub fn new(reply_prefix: &[u8], keep_frame_times: bool) -> Window {
        Window {
            reply_prefix: reply_prefix.to_vec(),
            base: 0,
            pending: VecDeque::new(),
            count: 0,
            bytes: 0,
            next_token: 0,
            keep_frame_times,
            replay_from: None,
            replay_stored_new: false,
            refused_at: None,
        }
    }

    /// Unacked messages.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Their payloads' size.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// When the oldest unacked message was sent (the caller's clock).
    pub fn oldest_sent(&self) -> Option<f64> {
        self.pending.iter().flatten().next().map(|p| p.sent)
    }

    /// Encodes messages `start..end` of `outbox` with their reply subjects into `out`
    /// and takes them as unacked; on an error nothing is taken (`out` may hold part).
    pub fn send(
        &mut self,
        outbox: &Arc<Outbox>,
        start: usize,
        end: usize,
        now: f64,
        out: &mut Vec<u8>,
    ) -> Result<(), ProtocolError> {
        out.reserve(outbox.run_bytes(start, end) + (end - start) * (self.reply_prefix.len() + 48));
        let mut reply = self.reply_prefix.clone();
        let base = reply.len();
        let mut num = itoa::Buffer::new();
        for (k, i) in (start..end).enumerate() {
            reply.truncate(base);
            reply.extend_from_slice(num.format(self.next_token + k as u64).as_bytes());
            outbox.encode(i, &reply, out)?;
        }
        self.hold(outbox, start, end, now);
        Ok(())
    }

    /// Takes messages `start..end` of `outbox` as unacked without sending them (the
    /// rest of a replay cut short, sent by the next one).
    pub fn hold(&mut self, outbox: &Arc<Outbox>, start: usize, end: usize, now: f64) {
        if self.pending.is_empty() {
            self.base = self.next_token;
        }
        for i in start..end {
            self.pending.push_back(Some(Pending {
                outbox: Arc::clone(outbox),
                index: i as u32,
                sent: now,
            }));
            self.bytes += outbox.msgs[i].payload.len();
        }
        self.count += end - start;
        self.next_token += (end - start) as u64;
    }

    fn slot(&mut self, token: u64) -> Option<&mut Option<Pending>> {
        let at = token.checked_sub(self.base)?;
        self.pending.get_mut(usize::try_from(at).ok()?)
    }

    fn is_pending(&self, token: u64) -> bool {
        token
            .checked_sub(self.base)
            .and_then(|at| self.pending.get(usize::try_from(at).ok()?))
            .is_some_and(Option::is_some)
    }

    /// Applies one read's PubAcks, (token, stream seq, duplicate), and refusals,
    /// (token, reason). A message stored after a refused one stays unacked: the replay
    /// sends it again behind that one, and finds it stored.
    pub fn ack(&mut self, acks: &[(u64, u64, bool)], refusals: &[(u64, String)]) -> Acked {
        let mut got = Acked::default();
        for (token, why) in refusals {
            if self.is_pending(*token) {
                if self.refused_at.is_none_or(|at| *token < at) {
                    self.refused_at = Some(*token);
                }
                got.refused.push(why.clone());
            }
        }
        for &(token, _seq, duplicate) in acks {
            if self.refused_at.is_some_and(|at| token > at) {
                continue;
            }
            let Some(entry) = self.slot(token).and_then(Option::take) else {
                continue; // a late ack of a message already replayed
            };
            let outbox = &entry.outbox;
            let i = entry.index as usize;
            self.count -= 1;
            self.bytes -= outbox.msgs[i].payload.len();
            got.acked += 1;
            if duplicate {
                got.duplicates += 1;
            }
            if outbox.msgs[i].frame {
                got.frames += 1;
                got.newest_frame_ns = got.newest_frame_ns.max(outbox.msgs[i].receive_ns);
                if self.keep_frame_times {
                    got.frame_times.push(outbox.msgs[i].receive_ns);
                }
            }
            if self.replay_from.is_some_and(|from| token >= from) {
                // Replayed messages are acked in order: one the stream already had,
                // after one it stored anew, was stored ahead of that one.
                if !duplicate {
                    self.replay_stored_new = true;
                } else if self.replay_stored_new {
                    got.reordered.push((
                        String::from_utf8_lossy(outbox.msg_id(i)).into_owned(),
                        String::from_utf8_lossy(outbox.subject(i)).into_owned(),
                    ));
                }
            }
        }
        while matches!(self.pending.front(), Some(None)) {
            self.pending.pop_front();
            self.base += 1;
        }
        got
    }

    /// Every unacked message, in the order sent, as a new outbox; the window is then
    /// empty and a replay begins with the next token.
    pub fn take_unacked(&mut self) -> Result<Outbox, ProtocolError> {
        let mut replay = Outbox::with_capacity(self.count, self.bytes * 2);
        for p in self.pending.drain(..).flatten() {
            replay.copy_from(&p.outbox, p.index as usize)?;
        }
        self.count = 0;
        self.bytes = 0;
        self.base = self.next_token;
        self.replay_from = Some(self.next_token);
        self.replay_stored_new = false;
        self.refused_at = None;
        Ok(replay)
    }

    /// The replay is over: acks are plain acks again.
    pub fn end_replay(&mut self) {
        self.replay_from = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(n: usize) -> Arc<Outbox> {
        let mut o = Outbox::default();
        for i in 0..n {
            let id = format!("c:{i}");
            o.push(
                b"s.a",
                id.as_bytes(),
                b"K: v\r\n",
                b"xyz",
                i as u64,
                i % 2 == 0,
            )
            .unwrap();
        }
        Arc::new(o)
    }

    #[test]
    fn a_message_reads_back_as_pushed() {
        let o = outbox(3);
        assert_eq!(o.len(), 3);
        assert_eq!(o.subject(1), b"s.a");
        assert_eq!(o.msg_id(2), b"c:2");
        assert_eq!(o.header_lines(2), b"K: v\r\n");
        assert_eq!(o.payload(0), b"xyz");
        assert_eq!(o.payload_bytes(), 9);
        let mut copy = Outbox::default();
        copy.extend(&o).unwrap();
        copy.extend(&o).unwrap();
        assert_eq!(copy.len(), 6);
        assert_eq!(copy.msg_id(4), b"c:1");
        assert_eq!(copy.header_lines(5), b"K: v\r\n");
        assert!(copy.is_frame(3) && !copy.is_frame(4));
    }

    #[test]
    fn a_bad_subject_or_header_adds_nothing() {
        let mut o = Outbox::default();
        assert!(o.push(b"a b", b"1", b"", b"p", 0, false).is_err());
        assert!(o.push(b"a", b"1\r\n", b"", b"p", 0, false).is_err());
        assert!(o.is_empty());
        o.push(b"a", b"1", b"", b"p", 0, false).unwrap();
        assert_eq!(o.subject(0), b"a");
    }

    #[test]
    fn encodes_with_consecutive_reply_tokens() {
        let o = outbox(2);
        let mut w = Window::new(b"_I.x.", false);
        let mut out = Vec::new();
        w.send(&o, 0, 2, 1.0, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HPUB s.a _I.x.0 "));
        assert!(text.contains("HPUB s.a _I.x.1 "));
        assert!(text.contains("Nats-Msg-Id: c:1\r\nK: v\r\n\r\nxyz"));
        assert_eq!((w.len(), w.bytes()), (2, 6));
    }

    #[test]
    fn acks_free_the_window_and_count_frames() {
        let o = outbox(4);
        let mut w = Window::new(b"_I.", true);
        w.send(&o, 0, 4, 1.0, &mut Vec::new()).unwrap();
        let got = w.ack(
            &[(1, 10, false), (0, 9, true), (0, 9, false), (7, 1, false)],
            &[],
        );
        assert_eq!((got.acked, got.duplicates, got.frames), (2, 1, 1));
        assert_eq!(got.frame_times, vec![0]);
        assert_eq!(w.len(), 2);
        assert_eq!(w.oldest_sent(), Some(1.0));
        let got = w.ack(&[(3, 12, false), (2, 11, false)], &[]);
        assert_eq!((got.frames, got.newest_frame_ns), (1, 2));
        assert!(w.is_empty());
    }

    #[test]
    fn a_refusal_keeps_what_was_stored_after_it_for_the_replay() {
        let o = outbox(4);
        let mut w = Window::new(b"_I.", false);
        w.send(&o, 0, 4, 1.0, &mut Vec::new()).unwrap();
        let got = w.ack(
            &[(0, 1, false), (2, 2, false), (3, 3, false)],
            &[(1, "no leader".to_string()), (9, "not ours".to_string())],
        );
        assert_eq!(got.refused, vec!["no leader".to_string()]);
        assert_eq!(got.acked, 1);
        let replay = w.take_unacked().unwrap();
        let ids: Vec<&[u8]> = (0..replay.len()).map(|i| replay.msg_id(i)).collect();
        assert_eq!(ids, vec![&b"c:1"[..], b"c:2", b"c:3"]);
        // The replay: 1 stored anew, then 2 and 3 found stored (they went ahead of 1).
        let replay = Arc::new(replay);
        w.send(&replay, 0, 3, 2.0, &mut Vec::new()).unwrap();
        let got = w.ack(&[(4, 4, false), (5, 2, true), (6, 3, true)], &[]);
        assert_eq!(got.acked, 3);
        assert_eq!(
            got.reordered,
            vec![
                ("c:2".to_string(), "s.a".to_string()),
                ("c:3".to_string(), "s.a".to_string())
            ]
        );
        w.end_replay();
        assert!(w.is_empty());
    }

    #[test]
    fn a_replay_of_duplicates_alone_is_no_reordering() {
        let o = outbox(2);
        let mut w = Window::new(b"_I.", false);
        w.send(&o, 0, 2, 1.0, &mut Vec::new()).unwrap();
        let replay = Arc::new(w.take_unacked().unwrap());
        w.send(&replay, 0, 1, 2.0, &mut Vec::new()).unwrap();
        w.hold(&replay, 1, 2, 2.0);
        let got = w.ack(&[(2, 1, true), (3, 2, true)], &[]);
        assert_eq!((got.acked, got.duplicates), (2, 2));
        assert!(got.reordered.is_empty());
    }

    #[test]
    fn end_within_counts_messages_and_bytes() {
        let o = outbox(5);
        assert_eq!(o.end_within(0, 3, 100), 3);
        assert_eq!(o.end_within(0, 10, 6), 2);
        assert_eq!(o.end_within(4, 10, 1), 5);
        assert_eq!(o.end_within(1, 0, 100), 2);
    }
}
