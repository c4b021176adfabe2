//! A conversation's messages, in chunks of [`CHUNK_LEN`].
//!
//! The chunk is the unit of storage and of sharing with the view: a new message or a delivery
//! state change rewrites one chunk record, not the conversation, and the view holds the chunks by
//! reference count, so building it costs one pointer copy per chunk. A chunk the view still holds
//! is copied on write ([`Arc::make_mut`]); the view keeps what it showed.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use super::{Message, MessageId, MessageKind};

/// Messages per chunk. A full chunk of short texts is a few kilobytes.
pub const CHUNK_LEN: usize = 64;

/// One chunk: `CHUNK_LEN` messages, except the last chunk of a log, which holds 1 to `CHUNK_LEN`.
pub type Chunk = Arc<Vec<Message>>;

/// The messages of one conversation, oldest first, with an index of their ids.
///
/// The index makes a receipt naming [`crate::core::content::MAX_RECEIPT_IDS`] ids, or a duplicate
/// delivery, cost one hash lookup per id however long the conversation is (a peer chooses how
/// many ids it names; it must not choose how much of the log is scanned). It is rebuilt when a
/// log is restored, not stored.
#[derive(Clone, Default)]
pub struct Log {
    chunks: Vec<Chunk>,
    /// Chunks changed since [`Log::take_dirty`] last ran.
    dirty: BTreeSet<u32>,
    /// Outgoing text id to its position (the newest, should a random id ever repeat).
    outgoing: HashMap<MessageId, usize>,
    /// Incoming text ids.
    incoming: HashSet<MessageId>,
    /// Index lookups made (tests assert the work a receipt does).
    #[cfg(test)]
    pub(super) lookups: std::cell::Cell<u64>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log").field("len", &self.len()).finish_non_exhaustive()
    }
}

/// Why stored chunks do not make a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingChunk;

impl Log {
    /// Number of messages.
    pub fn len(&self) -> usize {
        match self.chunks.last() {
            Some(last) => (self.chunks.len() - 1) * CHUNK_LEN + last.len(),
            None => 0,
        }
    }

    /// No messages.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// All messages, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Message> {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    /// The message at `index`.
    pub fn get(&self, index: usize) -> Option<&Message> {
        self.chunks.get(index / CHUNK_LEN)?.get(index % CHUNK_LEN)
    }

    /// The newest message.
    pub fn last(&self) -> Option<&Message> {
        self.chunks.last()?.last()
    }

    /// The chunks, oldest first (shared with the view).
    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    pub(super) fn push(&mut self, message: Message) {
        self.index(self.len(), &message);
        match self.chunks.last_mut() {
            Some(last) if last.len() < CHUNK_LEN => Arc::make_mut(last).push(message),
            _ => self.chunks.push(Arc::new(vec![message])),
        }
        self.mark(self.chunks.len() - 1);
    }

    fn index(&mut self, position: usize, message: &Message) {
        // Texts and files are what receipts and de-duplication refer to; notices have random ids.
        if !matches!(message.kind, MessageKind::Text | MessageKind::Attachment) {
            return;
        }
        if message.outgoing {
            self.outgoing.insert(message.id, position);
        } else {
            self.incoming.insert(message.id);
        }
    }

    fn count_lookup(&self) {
        #[cfg(test)]
        self.lookups.set(self.lookups.get() + 1);
    }

    /// The position of the outgoing text with this id.
    pub(super) fn find_outgoing(&self, id: &MessageId) -> Option<usize> {
        self.count_lookup();
        self.outgoing.get(id).copied()
    }

    /// Whether an incoming text with this id is in the log.
    pub(super) fn has_incoming(&self, id: &MessageId) -> bool {
        self.count_lookup();
        self.incoming.contains(id)
    }

    /// Changes the message at `index` (and marks its chunk for saving).
    pub(super) fn update(&mut self, index: usize, f: impl FnOnce(&mut Message)) {
        let (c, i) = (index / CHUNK_LEN, index % CHUNK_LEN);
        if let Some(message) = self.chunks.get_mut(c).and_then(|chunk| Arc::make_mut(chunk).get_mut(i)) {
            f(message);
            self.mark(c);
        }
    }

    fn mark(&mut self, chunk: usize) {
        self.dirty.insert(u32::try_from(chunk).unwrap_or(u32::MAX));
    }

    /// Marks every chunk for saving (after reading an older stored format).
    pub(super) fn mark_all(&mut self) {
        for c in 0..self.chunks.len() {
            self.mark(c);
        }
    }

    /// The chunks changed since the last call, with their indices.
    pub(super) fn take_dirty(&mut self) -> Vec<(u32, Chunk)> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|c| Some((c, self.chunks.get(c as usize)?.clone())))
            .collect()
    }

    /// A log of `len` messages from its stored chunks (in any order). Refuses chunks that are
    /// missing, surplus, or not of the size their position requires.
    pub(super) fn from_chunks(
        len: usize,
        mut chunks: Vec<(u32, Vec<Message>)>,
    ) -> Result<Self, MissingChunk> {
        chunks.sort_by_key(|(index, _)| *index);
        let count = len.div_ceil(CHUNK_LEN);
        if chunks.len() != count {
            return Err(MissingChunk);
        }
        let mut log = Self::default();
        for (position, (index, messages)) in chunks.into_iter().enumerate() {
            let expected = if position + 1 == count { len - position * CHUNK_LEN } else { CHUNK_LEN };
            if index as usize != position || messages.len() != expected {
                return Err(MissingChunk);
            }
            for (offset, message) in messages.iter().enumerate() {
                log.index(position * CHUNK_LEN + offset, message);
            }
            log.chunks.push(Arc::new(messages));
        }
        Ok(log)
    }
}

impl std::ops::Index<usize> for Log {
    type Output = Message;

    fn index(&self, index: usize) -> &Message {
        &self.chunks[index / CHUNK_LEN][index % CHUNK_LEN]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Delivery, MessageKind};

    fn message(n: u64) -> Message {
        Message {
            id: [n as u8; 16],
            kind: MessageKind::Text,
            outgoing: n.is_multiple_of(2),
            text: format!("m{n}"),
            sent_at: n,
            received_at: n,
            delivery: Delivery::Pending,
            attachment: None,
        }
    }

    #[test]
    fn chunks_fill_in_order_and_only_changed_ones_are_dirty() {
        let mut log = Log::default();
        for n in 0..(2 * CHUNK_LEN as u64 + 3) {
            log.push(message(n));
        }
        assert_eq!(log.len(), 2 * CHUNK_LEN + 3);
        assert_eq!(log.chunks().len(), 3);
        assert_eq!(log[CHUNK_LEN].text, format!("m{CHUNK_LEN}"));
        assert_eq!(
            log.iter().map(|m| m.sent_at).collect::<Vec<_>>(),
            (0..log.len() as u64).collect::<Vec<_>>()
        );
        assert_eq!(log.take_dirty().iter().map(|(c, _)| *c).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(log.take_dirty().is_empty());

        let held = log.chunks()[0].clone();
        let index = log.find_outgoing(&[4; 16]).unwrap();
        assert_eq!(index, 4);
        assert_eq!(log.find_outgoing(&[5; 16]), None, "message 5 is incoming");
        assert!(log.has_incoming(&[5; 16]));
        log.update(index, |m| m.delivery = Delivery::Delivered);
        // Copy on write: what a view holds does not change under it.
        assert_eq!(held[4].delivery, Delivery::Pending);
        assert_eq!(log[4].delivery, Delivery::Delivered);
        let dirty = log.take_dirty();
        assert_eq!(dirty.len(), 1);
        assert_eq!(dirty[0].0, 0);
    }

    #[test]
    fn stored_chunks_must_be_complete() {
        let mut log = Log::default();
        for n in 0..(CHUNK_LEN as u64 + 1) {
            log.push(message(n));
        }
        let chunks: Vec<(u32, Vec<Message>)> =
            log.take_dirty().into_iter().map(|(c, chunk)| (c, (*chunk).clone())).collect();
        let len = log.len();
        let back = Log::from_chunks(len, chunks.iter().rev().cloned().collect()).unwrap();
        assert_eq!(back.iter().collect::<Vec<_>>(), log.iter().collect::<Vec<_>>());
        // The index is rebuilt: the last (outgoing) message is found by id.
        assert_eq!(back.find_outgoing(&[CHUNK_LEN as u8; 16]), Some(CHUNK_LEN));
        assert_eq!(Log::from_chunks(len, chunks[..1].to_vec()).unwrap_err(), MissingChunk);
        assert_eq!(Log::from_chunks(len - 1, chunks.clone()).unwrap_err(), MissingChunk);
        assert_eq!(Log::from_chunks(len + CHUNK_LEN, chunks.clone()).unwrap_err(), MissingChunk);
        let mut twice = chunks.clone();
        twice[1].0 = 0;
        assert_eq!(Log::from_chunks(len, twice).unwrap_err(), MissingChunk);
        assert!(Log::from_chunks(0, Vec::new()).unwrap().is_empty());
    }
}
