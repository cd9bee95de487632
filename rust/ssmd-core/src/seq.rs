//! Exchange sequence tracking per (connection, subscription).
//!
//! Kalshi numbers messages per `sid`, and sids are only unique within one
//! connection, so the key is (conn_id, sid). A new connection restarts every
//! sid and seq, so its first message is never a gap. Redelivered or late
//! messages never move the expected seq backwards: a tracker that regressed
//! there reported phantom gaps after every redelivery.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

/// How one observed seq relates to what came before on its (conn_id, sid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqOutcome {
    /// The first seq seen on this (conn_id, sid) since it started or was reset.
    First,
    /// Exactly the expected seq.
    InOrder,
    /// Seqs `expected..received` were skipped; `received + 1` is expected next.
    Gap { expected: u64, received: u64 },
    /// At or below the last seq seen: a redelivery; state is unchanged.
    Duplicate,
    /// seq 0: the message carries no seq; state is unchanged.
    Unsequenced,
}

/// The last seq seen per (conn_id, sid).
#[derive(Debug, Default, Clone)]
pub struct SeqTracker {
    last: HashMap<u64, HashMap<u32, u64>>,
}

impl SeqTracker {
    pub fn new() -> SeqTracker {
        SeqTracker::default()
    }

    pub fn observe(&mut self, conn_id: u64, sid: u32, seq: u64) -> SeqOutcome {
        if seq == 0 {
            return SeqOutcome::Unsequenced;
        }
        let last = match self.last.entry(conn_id).or_default().entry(sid) {
            Entry::Vacant(slot) => {
                slot.insert(seq);
                return SeqOutcome::First;
            }
            Entry::Occupied(slot) => slot.into_mut(),
        };
        if seq <= *last {
            return SeqOutcome::Duplicate;
        }
        // `*last < seq <= u64::MAX`, so `*last + 1` cannot overflow.
        let expected = *last + 1;
        *last = seq;
        if seq == expected {
            SeqOutcome::InOrder
        } else {
            SeqOutcome::Gap {
                expected,
                received: seq,
            }
        }
    }

    /// The last seq seen on (conn_id, sid), if any.
    pub fn last(&self, conn_id: u64, sid: u32) -> Option<u64> {
        self.last.get(&conn_id)?.get(&sid).copied()
    }

    /// Moves (conn_id, sid) forward to `seq` (never back): a restored
    /// checkpoint already holds everything up to it.
    pub fn advance_to(&mut self, conn_id: u64, sid: u32, seq: u64) {
        if seq == 0 {
            return;
        }
        let last = self
            .last
            .entry(conn_id)
            .or_default()
            .entry(sid)
            .or_insert(seq);
        *last = (*last).max(seq);
    }

    /// The seq expected next on (conn_id, sid), if any was seen.
    pub fn expected(&self, conn_id: u64, sid: u32) -> Option<u64> {
        let last = self.last.get(&conn_id)?.get(&sid)?;
        last.checked_add(1)
    }

    /// Forgets (conn_id, sid): after a resubscribe its seq restarts.
    pub fn reset(&mut self, conn_id: u64, sid: u32) {
        if let Some(sids) = self.last.get_mut(&conn_id) {
            sids.remove(&sid);
            if sids.is_empty() {
                self.last.remove(&conn_id);
            }
        }
    }

    /// Drops the state of a closed connection, so memory tracks open ones only.
    pub fn forget_connection(&mut self, conn_id: u64) {
        self.last.remove(&conn_id);
    }

    /// Number of (conn_id, sid) pairs tracked.
    pub fn len(&self) -> usize {
        self.last.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn first_seq_is_whatever_arrives() {
        let mut t = SeqTracker::new();
        // Kalshi examples start a sid at seq 2: not a gap.
        assert_eq!(t.observe(1, 3, 2), SeqOutcome::First);
        assert_eq!(t.observe(1, 3, 3), SeqOutcome::InOrder);
        assert_eq!(t.expected(1, 3), Some(4));
    }

    #[test]
    fn gap_then_continues_after_received() {
        let mut t = SeqTracker::new();
        t.observe(1, 1, 1);
        assert_eq!(
            t.observe(1, 1, 5),
            SeqOutcome::Gap {
                expected: 2,
                received: 5
            }
        );
        assert_eq!(t.observe(1, 1, 6), SeqOutcome::InOrder);
    }

    #[test]
    fn redelivery_never_regresses() {
        let mut t = SeqTracker::new();
        for seq in 1..=10 {
            t.observe(1, 1, seq);
        }
        // A late copy of 4 is a duplicate and does not pull expected back to 5.
        assert_eq!(t.observe(1, 1, 4), SeqOutcome::Duplicate);
        assert_eq!(t.observe(1, 1, 10), SeqOutcome::Duplicate);
        assert_eq!(t.expected(1, 1), Some(11));
        assert_eq!(t.observe(1, 1, 11), SeqOutcome::InOrder);
    }

    #[test]
    fn late_message_after_gap_is_a_duplicate() {
        let mut t = SeqTracker::new();
        t.observe(1, 1, 1);
        t.observe(1, 1, 4);
        // 2 arrives late: reported as duplicate, expected stays at 5.
        assert_eq!(t.observe(1, 1, 2), SeqOutcome::Duplicate);
        assert_eq!(t.observe(1, 1, 5), SeqOutcome::InOrder);
    }

    #[test]
    fn new_connection_is_never_a_gap() {
        let mut t = SeqTracker::new();
        t.observe(1, 1, 500);
        // Reconnect: same sid number, seqs restart low.
        assert_eq!(t.observe(2, 1, 1), SeqOutcome::First);
        assert_eq!(t.observe(2, 1, 2), SeqOutcome::InOrder);
        // The old connection's state is separate.
        assert_eq!(t.observe(1, 1, 501), SeqOutcome::InOrder);
    }

    #[test]
    fn sids_are_independent() {
        let mut t = SeqTracker::new();
        t.observe(1, 1, 10);
        assert_eq!(t.observe(1, 2, 1), SeqOutcome::First);
        assert_eq!(t.observe(1, 1, 11), SeqOutcome::InOrder);
    }

    #[test]
    fn reset_restarts_a_sid() {
        let mut t = SeqTracker::new();
        t.observe(1, 1, 10);
        t.observe(1, 2, 10);
        t.reset(1, 1);
        assert_eq!(t.observe(1, 1, 1), SeqOutcome::First);
        assert_eq!(t.observe(1, 2, 11), SeqOutcome::InOrder);
    }

    #[test]
    fn forgetting_a_connection_frees_it() {
        let mut t = SeqTracker::new();
        t.observe(1, 1, 1);
        t.observe(1, 2, 1);
        t.observe(2, 1, 1);
        assert_eq!(t.len(), 3);
        t.forget_connection(1);
        assert_eq!(t.len(), 1);
        assert_eq!(t.observe(1, 1, 7), SeqOutcome::First);
    }

    #[test]
    fn seq_zero_is_unknown_and_ignored() {
        let mut t = SeqTracker::new();
        assert_eq!(t.observe(1, 1, 0), SeqOutcome::Unsequenced);
        assert!(t.is_empty());
        t.observe(1, 1, 3);
        assert_eq!(t.observe(1, 1, 0), SeqOutcome::Unsequenced);
        assert_eq!(t.observe(1, 1, 4), SeqOutcome::InOrder);
        assert_eq!(
            t.observe(1, 1, u64::MAX),
            SeqOutcome::Gap {
                expected: 5,
                received: u64::MAX
            }
        );
        assert_eq!(t.observe(1, 1, u64::MAX), SeqOutcome::Duplicate);
        assert_eq!(t.expected(1, 1), None);
    }

    proptest! {
        /// Any delivery order: the expected seq is always one past the highest
        /// seen, and gaps account for exactly the seqs never delivered.
        #[test]
        fn expected_is_max_plus_one(seqs in proptest::collection::vec(1u64..60, 1..80)) {
            let mut t = SeqTracker::new();
            let mut max = 0u64;
            let mut skipped = 0u64;
            let mut advanced = 0u64;
            for &seq in &seqs {
                match t.observe(1, 1, seq) {
                    SeqOutcome::First => prop_assert_eq!(max, 0),
                    SeqOutcome::InOrder => {
                        prop_assert_eq!(seq, max + 1);
                        advanced += 1;
                    }
                    SeqOutcome::Gap { expected, received } => {
                        prop_assert_eq!(expected, max + 1);
                        prop_assert_eq!(received, seq);
                        skipped += received - expected;
                        advanced += 1;
                    }
                    SeqOutcome::Duplicate => prop_assert!(seq <= max),
                    SeqOutcome::Unsequenced => prop_assert!(false, "seq is never 0 here"),
                }
                max = max.max(seq);
                prop_assert_eq!(t.expected(1, 1), Some(max + 1));
            }
            // Every step from the first seq to the highest was either
            // delivered (advanced) or reported missing (skipped).
            prop_assert_eq!(skipped + advanced, max - seqs[0]);
        }
    }
}
