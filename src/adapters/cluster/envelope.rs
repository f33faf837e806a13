//! The wire form of a publication between nodes (version 1). Binary and
//! copy-free to decode; pinned byte for byte by a test, so that it cannot change
//! silently (a cluster in a rolling upgrade runs two versions at once).
//!
//! ```text
//! "WSL" 0x01                 magic and version
//! u8 n, n bytes              the publishing node's name (UTF-8, at most 255 bytes)
//! u64                        its incarnation (random per start: a restarted node
//!                            numbers from 1 again)
//! u64                        the publication's number, from 1, per incarnation
//! u64                        when it was published, µs since the Unix epoch
//! u8 target                  0 all, 1 user, 2 group, 3 one connection
//! [u16 n, n bytes]           the user's, group's or connection's node's name
//!                            (UTF-8), for 1, 2 and 3
//! [u64]                      the connection's id on that node, for 3
//! u8 kind                    1 text (UTF-8), 2 binary
//! the payload                to the end
//! ```
//!
//! Integers are big-endian.

use crate::core::{ConnectionId, Message};
use crate::registry::{Publication, Target};

const MAGIC: &[u8; 4] = b"WSL\x01";

/// A decoded envelope: who published it (borrowed from the bytes: no allocation
/// for a name per message), its number, and the publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Envelope<'a> {
    pub(crate) node: &'a str,
    pub(crate) incarnation: u64,
    pub(crate) seq: u64,
    pub(crate) at_us: u64,
    pub(crate) publication: Publication,
}

/// Why bytes are not an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EnvelopeError {
    /// Another format or version.
    #[error("not a version-1 envelope")]
    Version,
    /// Cut short, or a field out of range.
    #[error("malformed envelope: {0}")]
    Malformed(&'static str),
}

/// Encodes `publication` as published by `node` (see the module docs).
#[cfg(test)]
pub(crate) fn encode(
    node: &str,
    incarnation: u64,
    seq: u64,
    at_us: u64,
    publication: &Publication,
) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(&mut out, node, incarnation, seq, at_us, publication);
    out
}

/// The longest node name an envelope carries (a one-byte length).
pub(crate) const MAX_NODE: usize = u8::MAX as usize;

/// The longest target name an envelope carries (a two-byte length).
pub(crate) const MAX_TARGET: usize = u16::MAX as usize;

/// Whether `publication`'s target fits an envelope (the broker refuses one that
/// does not, rather than send it to a name cut short).
pub(crate) fn fits(publication: &Publication) -> bool {
    match &publication.target {
        Target::User(name) | Target::Group(name) => name.len() <= MAX_TARGET,
        Target::Connection { node, .. } => node.len() <= MAX_NODE,
        _ => true,
    }
}

/// [`encode`], into `out` (cleared first): the publisher reuses one buffer. The
/// node name and the target must fit (`Cluster::start` checks the name, the broker
/// [`fits`]); were they longer they would be cut.
pub(crate) fn encode_into(
    out: &mut Vec<u8>,
    node: &str,
    incarnation: u64,
    seq: u64,
    at_us: u64,
    publication: &Publication,
) {
    out.clear();
    let name = &node.as_bytes()[..node.len().min(MAX_NODE)];
    let (target, target_name, id): (u8, &[u8], Option<u64>) = match &publication.target {
        Target::User(user) => (1, user.as_bytes(), None),
        Target::Group(group) => (2, group.as_bytes(), None),
        Target::Connection { node, id } => (3, node.as_bytes(), Some(id.get())),
        _ => (0, &[], None),
    };
    let target_name = &target_name[..target_name.len().min(MAX_TARGET)];
    let (kind, payload): (u8, &[u8]) = match &publication.message {
        Message::Text(text) => (1, text.as_bytes()),
        Message::Binary(bytes) => (2, bytes),
    };
    out.reserve(34 + name.len() + target_name.len() + payload.len());
    out.extend_from_slice(MAGIC);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(&incarnation.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&at_us.to_be_bytes());
    out.push(target);
    if target != 0 {
        out.extend_from_slice(&(target_name.len() as u16).to_be_bytes());
        out.extend_from_slice(target_name);
    }
    if let Some(id) = id {
        out.extend_from_slice(&id.to_be_bytes());
    }
    out.push(kind);
    out.extend_from_slice(payload);
}

/// Decodes an envelope; never panics on any input.
pub(crate) fn decode(bytes: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
    let rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or(EnvelopeError::Version)?;
    let mut cursor = Cursor(rest);
    fn text(bytes: &[u8]) -> Result<&str, EnvelopeError> {
        std::str::from_utf8(bytes).map_err(|_| EnvelopeError::Malformed("a name is not UTF-8"))
    }
    let u64_at = |bytes: &[u8]| u64::from_be_bytes(bytes.try_into().expect("8 bytes"));
    let name_len = usize::from(cursor.take(1)?[0]);
    let node = text(cursor.take(name_len)?)?;
    let incarnation = u64_at(cursor.take(8)?);
    let seq = u64_at(cursor.take(8)?);
    let at_us = u64_at(cursor.take(8)?);
    let target = match cursor.take(1)?[0] {
        0 => Target::All,
        kind @ (1..=3) => {
            let len = cursor.take(2)?;
            let name = text(cursor.take(usize::from(u16::from_be_bytes([len[0], len[1]])))?)?;
            match kind {
                1 => Target::User(name.into()),
                2 => Target::Group(name.into()),
                _ => Target::Connection {
                    node: name.into(),
                    id: ConnectionId::new(u64_at(cursor.take(8)?)),
                },
            }
        }
        _ => return Err(EnvelopeError::Malformed("unknown target")),
    };
    let kind = cursor.take(1)?[0];
    let rest = cursor.0;
    let message = match kind {
        1 => Message::text(
            std::str::from_utf8(rest).map_err(|_| EnvelopeError::Malformed("text not UTF-8"))?,
        ),
        2 => Message::binary(rest),
        _ => return Err(EnvelopeError::Malformed("unknown kind")),
    };
    Ok(Envelope {
        node,
        incarnation,
        seq,
        at_us,
        publication: Publication::new(target, message),
    })
}

/// The bytes of an envelope not read yet.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EnvelopeError> {
        if self.0.len() < n {
            return Err(EnvelopeError::Malformed("cut short"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The wire form, byte for byte: a change here is a protocol change between
    /// nodes (bump the version, keep decoding the old one).
    #[test]
    fn the_wire_form_is_pinned() {
        let publication = Publication::new(Target::Group("room".into()), Message::text("hi"));
        let bytes = encode("a", 7, 42, 1_700_000_000_000, &publication);
        let expected: Vec<u8> = [
            &b"WSL\x01"[..],
            &[1, b'a'],
            &7_u64.to_be_bytes(),
            &42_u64.to_be_bytes(),
            &1_700_000_000_000_u64.to_be_bytes(),
            &[2, 0, 4],
            b"room",
            &[1],
            b"hi",
        ]
        .concat();
        assert_eq!(bytes, expected);
        let all = encode(
            "a",
            7,
            43,
            0,
            &Publication::new(Target::All, Message::binary(vec![0xff])),
        );
        assert_eq!(&all[30..], &[0, 2, 0xff], "target all: no name; binary");
        let one = Target::Connection {
            node: "b".into(),
            id: ConnectionId::new(9),
        };
        let one = encode("a", 7, 44, 0, &Publication::new(one, Message::text("")));
        let expected: Vec<u8> = [&[3, 0, 1, b'b'][..], &9_u64.to_be_bytes(), &[1]].concat();
        assert_eq!(
            &one[30..],
            expected.as_slice(),
            "one connection: node, id; empty text"
        );
    }

    fn target() -> impl Strategy<Value = Target> {
        prop_oneof![
            Just(Target::All),
            "[a-zé:]{0,20}".prop_map(|u| Target::User(u.as_str().into())),
            "[a-z0-9:]{0,20}".prop_map(|g| Target::Group(g.as_str().into())),
            ("[a-z0-9-]{0,20}", any::<u64>()).prop_map(|(node, id)| Target::Connection {
                node: node.as_str().into(),
                id: ConnectionId::new(id),
            }),
        ]
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_the_identity(
            node in "[a-z0-9-]{0,40}",
            incarnation in any::<u64>(),
            seq in any::<u64>(),
            at_us in any::<u64>(),
            target in target(),
            text in proptest::option::of(".{0,64}"),
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let message = match text {
                Some(text) => Message::text(text),
                None => Message::binary(bytes),
            };
            let publication = Publication::new(target, message);
            let bytes = encode(&node, incarnation, seq, at_us, &publication);
            let decoded = decode(&bytes).unwrap();
            prop_assert_eq!(decoded, Envelope { node: &node, incarnation, seq, at_us, publication });
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = decode(&bytes);
            let mut framed = MAGIC.to_vec();
            framed.extend_from_slice(&bytes);
            let _ = decode(&framed);
        }
    }
}
