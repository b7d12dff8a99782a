//! The records of one ledger partition, in a ring with a compact index (see [`Records`]).

use std::collections::VecDeque;
use std::hash::BuildHasher;

use super::ledger::Record;
use crate::domain::{PurchaseId, Timestamp};

/// The records of one partition: a ring in creation order, and an index from purchase id
/// to position.
///
/// Appending and forgetting walk the ring sequentially, and the index holds only sequence
/// numbers with their hashes precomputed, so forgetting the oldest record never has to
/// read a cold key: what makes a large idempotency table cheap on the purchase path. A
/// record still in flight or reserved when it reaches the front is moved to the back, so an
/// open reservation never holds up forgetting.
///
/// Forgetting does not touch the index either: an index entry whose sequence number is
/// below `first_sequence` is stale and matches nothing. Stale entries are purged only when
/// the index is full: the purge rebuilds it from the live entries with room for twice the
/// records, so the index holds at most about four entries per record, and a purchase pays
/// tens of nanoseconds of rebuilding instead of two cache misses into a table of a million
/// entries.
///
/// An index entry is 8 bytes: the low 32 bits of the sequence number and 32 bits of the
/// id's hash, so that growing the index never reads the ring. Sequence numbers are told
/// apart by their offset from `first_sequence` modulo 2^32, which is exact while the ring
/// and the stale entries span fewer than 2^32 records: [`Records::LIVE_MAX`] keeps them far
/// below.
#[derive(Default)]
pub(super) struct Records {
    pub(super) ring: VecDeque<Entry>,
    /// The sequence number of `ring[0]`; `ring[i]` has `first_sequence + i`.
    pub(super) first_sequence: u64,
    pub(super) index: hashbrown::HashTable<Slot>,
    /// Seeded fast hashing: purchase ids are chosen by clients, so the hash must resist
    /// flooding, and it is on every purchase's path.
    hasher: foldhash::fast::RandomState,
    /// Records not yet resolved (in flight or reserved).
    pub(super) unresolved: usize,
}

pub(super) struct Entry {
    pub(super) id: PurchaseId,
    hash: u32,
    pub(super) record: Record,
}

/// An index entry (see [`Records`]).
#[derive(Clone, Copy)]
pub(super) struct Slot {
    sequence: u32,
    hash: u32,
}

/// The table hash of a 32-bit id hash: its bits both low (where the table picks a bucket)
/// and high (where it takes a bucket's tag).
fn spread(hash: u32) -> u64 {
    (u64::from(hash) << 32) | u64::from(hash)
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records")
            .field("len", &self.ring.len())
            .field("unresolved", &self.unresolved)
            .finish()
    }
}

impl Records {
    /// At most this many live records (the capacity plus open reservations) per partition.
    /// The index then has room for at most about four times as many entries, so a stale
    /// entry is purged before its offset could wrap around into the ring's range: the ring
    /// and the stale entries span well under 2^31 sequence numbers, far below 2^32.
    pub const LIVE_MAX: usize = 1 << 28;

    fn hash(&self, id: &PurchaseId) -> u32 {
        self.hasher.hash_one(id) as u32
    }

    /// The ring position of an index entry; `None` when it is stale.
    fn offset(&self, slot: Slot) -> Option<usize> {
        let offset = slot.sequence.wrapping_sub(self.first_sequence as u32) as usize;
        (offset < self.ring.len()).then_some(offset)
    }

    pub(super) fn position(&self, id: &PurchaseId) -> Option<usize> {
        let hash = self.hash(id);
        let ring = &self.ring;
        let matches = |slot: &Slot| {
            slot.hash == hash && self.offset(*slot).is_some_and(|offset| ring[offset].id == *id)
        };
        self.index.find(spread(hash), matches).and_then(|slot| self.offset(*slot))
    }

    pub(super) fn get(&self, id: &PurchaseId) -> Option<&Record> {
        self.position(id).map(|position| &self.ring[position].record)
    }

    pub(super) fn get_mut(&mut self, id: &PurchaseId) -> Option<&mut Record> {
        self.position(id).map(|position| &mut self.ring[position].record)
    }

    /// The position of `id`, looked for first where sequence number `near` is: a record keeps
    /// its sequence number unless `evict` moves it to the back, so a saga finds its record
    /// there without touching the index, unless it was moved meanwhile.
    pub(super) fn near(&self, id: &PurchaseId, near: u64) -> Option<usize> {
        if let Some(offset) = near.checked_sub(self.first_sequence) {
            if let Some(entry) = self.ring.get(offset as usize) {
                if entry.id == *id {
                    return Some(offset as usize);
                }
            }
        }
        self.position(id)
    }

    /// Adds an unresolved record; the id must not be present. Answers its sequence number.
    pub(super) fn insert(&mut self, id: PurchaseId, record: Record) -> u64 {
        let hash = self.hash(&id);
        let sequence = self.first_sequence + self.ring.len() as u64;
        self.index_insert(hash, sequence);
        self.ring.push_back(Entry { id, hash, record });
        self.unresolved += 1;
        sequence
    }

    /// Indexes the ring entry that has (or is about to get) `sequence`; stale entries are
    /// purged first when the index is full.
    fn index_insert(&mut self, hash: u32, sequence: u64) {
        if self.index.len() == self.index.capacity() {
            self.purge_stale();
        }
        let slot = Slot { sequence: sequence as u32, hash };
        self.index.insert_unique(spread(hash), slot, |slot| spread(slot.hash));
    }

    /// Rebuilds the index from its live entries, with room for twice as many as the ring
    /// holds: the next purge is at least that many inserts away, and the index never holds
    /// more than about four entries per record. (Removing stale entries in place would leave
    /// tombstones that make the table double instead.)
    fn purge_stale(&mut self) {
        let mut index = hashbrown::HashTable::with_capacity(2 * self.ring.len() + 16);
        for slot in self.index.iter().filter(|slot| self.offset(**slot).is_some()) {
            index.insert_unique(spread(slot.hash), *slot, |slot| spread(slot.hash));
        }
        self.index = index;
    }

    /// The record of `id` (looked for at sequence number `near` first), marked resolved at
    /// `now`: one lookup for both.
    pub(super) fn resolve_mut(&mut self, id: &PurchaseId, near: u64, now: Timestamp) -> &mut Record {
        let position = self.near(id, near).expect("a record being resolved exists");
        self.unresolved -= 1;
        let record = &mut self.ring[position].record;
        assert!(record.resolved_at.is_none(), "a record is resolved once");
        record.resolved_at = Some(now);
        record
    }

    /// Forgets resolved records from the front while they are past the retention window or
    /// the ring holds more resolved records than `capacity`.
    pub(super) fn evict(&mut self, now: Timestamp, retention_ms: i64, capacity: usize) {
        // Each unresolved record is moved to the back at most once per call.
        let mut moves_left = self.unresolved;
        while let Some(front) = self.ring.front() {
            let over_capacity = self.ring.len() - self.unresolved > capacity;
            match front.record.resolved_at {
                Some(resolved_at) if over_capacity || resolved_at.plus_ms(retention_ms) <= now => {
                    // Its index entry is stale from now on.
                    self.ring.pop_front();
                    self.first_sequence += 1;
                }
                None if over_capacity && moves_left > 0 => {
                    moves_left -= 1;
                    let entry = self.ring.pop_front().expect("front exists");
                    self.first_sequence += 1;
                    let new_sequence = self.first_sequence + self.ring.len() as u64;
                    let hash = entry.hash;
                    self.ring.push_back(entry);
                    self.index_insert(hash, new_sequence);
                }
                _ => break,
            }
        }
    }

    pub(super) fn len(&self) -> usize {
        self.ring.len()
    }
}
