//! [`Outbox`]: a connection's queue of messages for the peer, with its oldest message
//! kept inline.
//!
//! Most of the time a connection's outbox holds nothing or one message: a broadcast
//! queues one, the driver takes it. Keeping that message inline, next to the lock in
//! the shared state, means a delivery and the driver's taking it touch no memory of
//! their own beyond the connection's first cache lines — with ten thousand
//! connections per broadcast, that is what a fan-out costs (`benches/fanout.rs`).
//! Only a backlog of two or more allocates, and the backlog's buffer is kept for the
//! connection's life, as a `VecDeque`'s would be. The whole is the size of a
//! `VecDeque` plus the count of queued bytes (40 bytes).

use std::collections::VecDeque;

use crate::core::Message;

/// A FIFO of messages: the queue is `head` (if any) followed by `rest`, in order.
/// `head` is filled only when the whole queue is empty (or by `push_front`), so when
/// present it is always the oldest.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    /// The oldest message, when it is not in `rest`.
    head: Option<Message>,
    /// The others, in order; allocated at the first backlog of two. Boxed so that
    /// the whole outbox is 32 bytes (the extra allocation clippy warns of is made
    /// once, by a connection's first backlog).
    #[allow(clippy::box_collection)]
    rest: Option<Box<VecDeque<Message>>>,
    /// The sum of the queued messages' [`Message::len`]: what the byte budget bounds.
    bytes: usize,
}

impl Outbox {
    /// How many messages are queued.
    pub(crate) fn len(&self) -> usize {
        usize::from(self.head.is_some()) + self.rest.as_ref().map_or(0, |rest| rest.len())
    }

    /// True when nothing is queued.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_none() && self.rest.as_ref().is_none_or(|rest| rest.is_empty())
    }

    /// The sum of the queued messages' lengths ([`Message::len`]).
    #[inline]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    fn rest(&mut self) -> &mut VecDeque<Message> {
        self.rest.get_or_insert_with(Box::default)
    }

    /// Queues `message` last.
    pub(crate) fn push_back(&mut self, message: Message) {
        self.bytes += message.len();
        let rest_empty = self.rest.as_ref().is_none_or(|rest| rest.is_empty());
        if self.head.is_none() && rest_empty {
            self.head = Some(message);
        } else {
            self.rest().push_back(message);
        }
    }

    /// Queues `message` first (a message handed back, older than everything queued).
    pub(crate) fn push_front(&mut self, message: Message) {
        self.bytes += message.len();
        if let Some(older) = self.head.replace(message) {
            self.rest().push_front(older);
        }
    }

    /// Takes the oldest message.
    pub(crate) fn pop_front(&mut self) -> Option<Message> {
        // `head`, when present, is older than all of `rest`; when absent, `rest`'s
        // front is the oldest (the head was taken before it).
        let message = self
            .head
            .take()
            .or_else(|| self.rest.as_mut().and_then(|rest| rest.pop_front()))?;
        self.bytes -= message.len();
        Some(message)
    }

    /// Queues every message of `messages` last, in order.
    pub(crate) fn extend(&mut self, messages: impl IntoIterator<Item = Message>) {
        for message in messages {
            self.push_back(message);
        }
    }

    /// Takes every message, oldest first.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Message> + '_ {
        self.bytes = 0;
        let head = self.head.take();
        let rest = self.rest.as_mut().map(|rest| rest.drain(..));
        head.into_iter().chain(rest.into_iter().flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::Outbox;
    use crate::core::Message;

    fn m(n: u32) -> Message {
        Message::text(n.to_string())
    }

    fn nums(outbox: &mut Outbox) -> Vec<String> {
        outbox
            .drain()
            .map(|m| m.as_text().unwrap().to_owned())
            .collect()
    }

    /// Every interleaving of pushes (back and front) and pops up to length 8 keeps
    /// the order a `VecDeque` keeps (G3: the outbox is written in order).
    #[test]
    fn behaves_as_a_vecdeque_g3() {
        // 0: push_back, 1: push_front, 2: pop_front.
        for len in 0..=8u32 {
            for code in 0..3u32.pow(len) {
                let (mut ours, mut model) = (Outbox::default(), std::collections::VecDeque::new());
                let (mut c, mut next) = (code, 0);
                for _ in 0..len {
                    match c % 3 {
                        0 => {
                            ours.push_back(m(next));
                            model.push_back(m(next));
                            next += 1;
                        }
                        1 => {
                            ours.push_front(m(next));
                            model.push_front(m(next));
                            next += 1;
                        }
                        _ => assert_eq!(ours.pop_front(), model.pop_front(), "code {code}"),
                    }
                    assert_eq!(ours.len(), model.len());
                    assert_eq!(ours.bytes(), model.iter().map(Message::len).sum::<usize>());
                    c /= 3;
                }
                let model: Vec<String> = model
                    .into_iter()
                    .map(|m| m.as_text().unwrap().to_owned())
                    .collect();
                assert_eq!(nums(&mut ours), model, "code {code}");
                assert!(ours.is_empty());
                assert_eq!(ours.bytes(), 0);
            }
        }
    }

    /// One message at a time never allocates the backlog.
    #[test]
    fn one_at_a_time_stays_inline() {
        let mut outbox = Outbox::default();
        for n in 0..100 {
            outbox.push_back(m(n));
            assert_eq!(outbox.pop_front(), Some(m(n)));
        }
        assert!(outbox.rest.is_none());
        assert_eq!(std::mem::size_of::<Outbox>(), 40);
    }
}
