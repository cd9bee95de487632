//! Which stream sequences the archiver has written: the dedupe state.
//!
//! Everything at or below `floor` is done (written, or known to be gone from
//! the stream); above it, runs of written sequences. Delivery is not in stream
//! order: after a restart, messages the previous process held unacked come back
//! only when their ack wait expires, after newer ones. So a sequence is a
//! duplicate only if it was written, never because a higher one was.
//!
//! A sequence the archiver never wrote is missing only once the consumer's ack
//! floor passes it: the server then has nothing left to deliver there
//! (`advance`). Memory: runs exist only between the floor and the newest
//! sequence, and merge as they fill.

use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub start: u64,
    pub end: u64, // inclusive
    pub ts_first: u64,
    pub ts_last: u64,
}

/// Missing stream sequences [start, end), with the receive times of the
/// written sequences around them (0 = unknown).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hole {
    pub start: u64,
    pub end: u64,
    pub ts_before: u64,
    pub ts_after: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Coverage {
    floor: u64,
    floor_ts: u64,
    runs: BTreeMap<u64, Run>, // by start; disjoint, none adjacent to another or to the floor
}

impl Coverage {
    pub fn new(floor: u64, floor_ts: u64) -> Coverage {
        Coverage {
            floor,
            floor_ts,
            runs: BTreeMap::new(),
        }
    }

    pub fn floor(&self) -> (u64, u64) {
        (self.floor, self.floor_ts)
    }

    pub fn runs(&self) -> impl Iterator<Item = &Run> {
        self.runs.values()
    }

    /// The highest sequence written (or the floor).
    pub fn last_seq(&self) -> u64 {
        self.runs.values().next_back().map_or(self.floor, |r| r.end)
    }

    pub fn contains(&self, seq: u64) -> bool {
        seq <= self.floor || self.run_at(seq).is_some()
    }

    fn run_at(&self, seq: u64) -> Option<&Run> {
        self.runs
            .range(..=seq)
            .next_back()
            .map(|(_, r)| r)
            .filter(|r| r.end >= seq)
    }

    /// Notes a written sequence (received at `ts`); false if it already was.
    pub fn insert(&mut self, seq: u64, ts: u64) -> bool {
        if self.contains(seq) {
            return false;
        }
        let mut run = Run {
            start: seq,
            end: seq,
            ts_first: ts,
            ts_last: ts,
        };
        if let Some((&start, prev)) = self.runs.range(..seq).next_back() {
            if prev.end + 1 == seq {
                run.start = start;
                run.ts_first = prev.ts_first;
                self.runs.remove(&start);
            }
        }
        if let Some(next) = self.runs.remove(&(seq + 1)) {
            run.end = next.end;
            run.ts_last = next.ts_last;
        }
        if run.start == self.floor + 1 {
            self.floor = run.end;
            self.floor_ts = run.ts_last;
        } else {
            self.runs.insert(run.start, run);
        }
        true
    }

    /// Moves the floor up to `ack_floor` (the consumer's: every sequence at or
    /// below it is acked or gone) and returns the sequences in between that
    /// were never written: they are gone from the stream.
    pub fn advance(&mut self, ack_floor: u64) -> Vec<Hole> {
        let mut holes = Vec::new();
        while self.floor < ack_floor {
            let next = self.runs.iter().next().map(|(_, r)| *r);
            let (end, ts_after) = match next {
                Some(r) if r.start <= ack_floor + 1 => (r.start, r.ts_first),
                _ => (ack_floor + 1, 0),
            };
            if end > self.floor + 1 {
                holes.push(Hole {
                    start: self.floor + 1,
                    end,
                    ts_before: self.floor_ts,
                    ts_after,
                });
            }
            match next {
                Some(r) if r.start == end => {
                    self.runs.remove(&r.start);
                    self.floor = r.end;
                    self.floor_ts = r.ts_last;
                }
                _ => self.floor = ack_floor,
            }
        }
        holes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn contiguous_writes_only_move_the_floor() {
        let mut c = Coverage::new(10, 100);
        for seq in 11..=20 {
            assert!(c.insert(seq, seq * 10));
        }
        assert_eq!(c.floor(), (20, 200));
        assert_eq!(c.runs().count(), 0);
        assert!(!c.insert(15, 0));
    }

    #[test]
    fn a_late_redelivery_below_newer_writes_is_written_not_dropped() {
        // 11-15 were held by a killed process; 16-20 arrive first.
        let mut c = Coverage::new(10, 100);
        for seq in 16..=20 {
            assert!(c.insert(seq, seq));
        }
        assert_eq!(c.last_seq(), 20);
        assert!(c.advance(10).is_empty());
        for seq in 11..=15 {
            assert!(c.insert(seq, seq));
        }
        assert_eq!(c.floor(), (20, 20));
        assert!(c.advance(20).is_empty());
    }

    #[test]
    fn sequences_the_ack_floor_passes_unwritten_are_holes() {
        let mut c = Coverage::new(10, 100);
        c.insert(11, 110);
        c.insert(14, 140);
        c.insert(15, 150);
        c.insert(30, 300);
        let holes = c.advance(20);
        assert_eq!(
            holes,
            vec![
                Hole {
                    start: 12,
                    end: 14,
                    ts_before: 110,
                    ts_after: 140
                },
                Hole {
                    start: 16,
                    end: 21,
                    ts_before: 150,
                    ts_after: 0
                },
            ]
        );
        assert_eq!(c.floor(), (20, 150));
        assert!(c.contains(30) && !c.contains(25));
        assert!(c.advance(29).len() == 1 && c.floor() == (30, 300));
    }

    proptest! {
        #[test]
        fn matches_a_set_of_written_sequences(
            ops in proptest::collection::vec((0u64..60, any::<bool>()), 0..200)
        ) {
            let mut c = Coverage::new(5, 0);
            let mut done: std::collections::BTreeSet<u64> = (0..=5).collect();
            let mut floor = 5;
            for (seq, advance) in ops {
                if advance {
                    let to = seq.max(floor);
                    let holes = c.advance(to);
                    let missing: Vec<u64> = (floor + 1..=to).filter(|s| !done.contains(s)).collect();
                    let reported: Vec<u64> = holes.iter().flat_map(|h| h.start..h.end).collect();
                    prop_assert_eq!(reported, missing);
                    done.extend(floor..=to);
                    floor = to;
                } else {
                    prop_assert_eq!(c.insert(seq, seq), done.insert(seq));
                }
                for s in 0..70 {
                    prop_assert_eq!(c.contains(s), done.contains(&s));
                }
                let (f, _) = c.floor();
                prop_assert!(c.runs().all(|r| r.start > f + 1 && r.start <= r.end));
            }
        }
    }
}
