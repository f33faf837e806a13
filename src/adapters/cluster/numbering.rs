//! What the subscriber knows of each publishing node: the numbering that drops
//! repeats and counts gaps (per-publisher order and exactly-once at every node),
//! and the quickest transit seen, above which lag is measured.

use std::collections::HashMap;

use super::envelope::Envelope;

/// What the subscriber knows of each publishing node (looked up by `&str`: a
/// node's name is allocated once, not per message).
#[derive(Default)]
pub(super) struct Numbering {
    nodes: HashMap<String, Seen>,
}

/// One publishing node as this node has seen it.
struct Seen {
    /// Its incarnation and the last number taken from it.
    numbers: (u64, u64),
    /// The quickest it was ever received: receive time − its stamp, in µs (which a
    /// constant difference between the two clocks shifts, so lag is measured above
    /// this floor, not from zero).
    floor_us: i64,
}

/// What became of one envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admitted {
    /// New, and this many earlier ones from its node were missed.
    New { missed: u64 },
    /// Already taken (a batch sent again after a failed pipeline): dropped.
    Repeat,
}

impl Numbering {
    /// Whether `envelope`, received at `now_us`, is new (and the gap before it),
    /// and how far behind the quickest from its node it came, in µs.
    pub(super) fn admit(&mut self, envelope: &Envelope<'_>, now_us: u64) -> (Admitted, u64) {
        let numbers = (envelope.incarnation, envelope.seq);
        let transit = now_us as i64 - envelope.at_us as i64;
        let Some(seen) = self.nodes.get_mut(envelope.node) else {
            // The first seen of this node: nothing before it is owed (it may have
            // published before this node subscribed).
            let seen = Seen {
                numbers,
                floor_us: transit,
            };
            self.nodes.insert(envelope.node.to_owned(), seen);
            return (Admitted::New { missed: 0 }, 0);
        };
        seen.floor_us = seen.floor_us.min(transit);
        let behind = (transit - seen.floor_us) as u64;
        let mut missed = 0;
        if seen.numbers.0 == envelope.incarnation {
            if envelope.seq <= seen.numbers.1 {
                return (Admitted::Repeat, behind);
            }
            missed = envelope.seq - seen.numbers.1 - 1;
        }
        seen.numbers = numbers;
        (Admitted::New { missed }, behind)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::core::Message;
    use crate::registry::{Publication, Target};

    fn envelope(node: &str, incarnation: u64, seq: u64, at_us: u64) -> Envelope<'_> {
        Envelope {
            node,
            incarnation,
            seq,
            at_us,
            publication: Publication::new(Target::All, Message::text("m")),
        }
    }

    #[test]
    fn repeats_dropped_gaps_counted_a_new_incarnation_owes_nothing() {
        let mut numbering = Numbering::default();
        let mut admit = |inc, seq| numbering.admit(&envelope("a", inc, seq, 0), 0).0;
        assert_eq!(admit(7, 5), Admitted::New { missed: 0 }); // first seen: nothing owed
        assert_eq!(admit(7, 6), Admitted::New { missed: 0 });
        assert_eq!(admit(7, 6), Admitted::Repeat);
        assert_eq!(admit(7, 3), Admitted::Repeat);
        assert_eq!(admit(7, 9), Admitted::New { missed: 2 });
        assert_eq!(admit(8, 1), Admitted::New { missed: 0 }); // restarted
        assert_eq!(admit(8, 1), Admitted::Repeat);
    }

    #[test]
    fn lag_is_measured_above_the_quickest_whatever_the_clocks_differ_by() {
        let mut numbering = Numbering::default();
        // b's clock runs 10 s ahead of ours: every raw transit is negative.
        let ahead = 10_000_000;
        let mut behind =
            |seq, sent: u64, now: u64| numbering.admit(&envelope("b", 1, seq, sent + ahead), now).1;
        assert_eq!(behind(1, 1_000, 1_100), 0);
        assert_eq!(behind(2, 2_000, 2_150), 50);
        assert_eq!(behind(3, 3_000, 3_080), 0); // a new quickest
        assert_eq!(behind(4, 4_000, 6_080), 2_000);
    }

    proptest! {
        /// One publisher's numbers 1..=n, each received never, once or twice in a
        /// row (a batch sent again): every number received is admitted exactly once,
        /// in order, and the gaps counted are exactly the numbers never received
        /// between the first and the last received.
        #[test]
        fn exactly_once_in_order_and_every_gap_counted(
            times in proptest::collection::vec(0_u8..3, 1..200),
        ) {
            let mut numbering = Numbering::default();
            let (mut admitted, mut missed) = (Vec::new(), 0);
            for (i, &t) in times.iter().enumerate() {
                let seq = i as u64 + 1;
                for _ in 0..t {
                    if let (Admitted::New { missed: m }, _) =
                        numbering.admit(&envelope("a", 1, seq, 0), 0)
                    {
                        admitted.push(seq);
                        missed += m;
                    }
                }
            }
            let received: Vec<u64> = (1..=times.len() as u64)
                .filter(|&seq| times[seq as usize - 1] > 0)
                .collect();
            prop_assert_eq!(&admitted, &received);
            let span = match (received.first(), received.last()) {
                (Some(first), Some(last)) => last - first + 1,
                _ => 0,
            };
            prop_assert_eq!(missed, span - received.len() as u64);
        }
    }
}
