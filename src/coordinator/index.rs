//! Which ledger remembers each purchase id: an open-addressing table of 8-byte entries that
//! the shards of a runtime share (or one ledger keeps for itself), so that a purchase id is
//! claimed once across every shard and a commit or cancel that names only the id finds its
//! record.
//!
//! An entry is a 25-bit tag of the id's hash (its top bit set, so that no entry is 0, the
//! empty slot), the 6-bit shard that holds the record and the low 32 bits of the record's
//! sequence number in that shard's ring (see `records.rs`). An entry is *live* while its
//! sequence number is inside its shard's window (the ring's first sequence number and the
//! next one), which each shard publishes after every round; other entries are *stale* and
//! match nothing. Sequence numbers are compared modulo 2^32, exact while a ring and the
//! stale entries of its shard span fewer than 2^32 records (a ring holds at most 2^28, and a
//! stale entry is dropped at the next rebuild, long before).
//!
//! Entries are only ever written into empty slots, with a compare-and-swap, and never
//! removed between rebuilds: so two shards claiming one id at once walk the same probe
//! sequence, race for the same first empty slot, and the loser finds the winner's entry.
//! That is what makes a claim unique without a lock or a message. Stale entries are dropped
//! by a rebuild (under the write half of a lock whose read half every user holds, per round,
//! so a rebuild waits for rounds to end) when the table is half full, into a table sized for
//! the live entries with room to spare.
//!
//! Invariants:
//! - a live entry's (shard, sequence) names a record of that shard whose id hashes to it;
//! - for every id, at most one record is live in all the shards together (enforced by the
//!   claims);
//! - the table is never more than half full at the start of a round, and a round inserts at
//!   most [`IdIndex::ROUND_INSERTS_MAX`] entries per shard, so a claim always finds an empty
//!   slot.

use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use parking_lot::{RwLock, RwLockReadGuard};

/// The most shards a runtime may have: the entry keeps 6 bits of shard.
pub const SHARDS_MAX: usize = 63;

const SEQUENCE_BITS: u32 = 32;
const SHARD_BITS: u32 = 6;
const TAG_BITS: u32 = 64 - SEQUENCE_BITS - SHARD_BITS;
/// Set in every tag, so that no entry is 0.
const TAG_MARK: u64 = 1 << (TAG_BITS - 1);
const EMPTY: u64 = 0;

/// The smallest table: room for a round of every shard at once without a rebuild between.
pub(crate) const CAPACITY_MIN: usize = 1 << 17;

/// Where a record is: its shard and the low 32 bits of its sequence number there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    pub shard: u32,
    pub sequence: u32,
}

/// What a claim found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Nothing live had the id: the entry is written, the id is the claimer's.
    Claimed,
    /// A live record of the claimer's own shard has the id: the full sequence number the
    /// caller's check answered.
    Here(u64),
    /// Another shard has a live entry with the id's tag: only that shard can tell whether
    /// it is the same id (or a stale entry, or a 1 in 2^25 coincidence of tags). Nothing
    /// was written.
    There(Place),
}

/// The window of sequence numbers a shard's ring holds, published after every round.
#[derive(Default)]
struct Window {
    first: AtomicU64,
    end: AtomicU64,
}

/// The table of entries; read it through [`IdIndex::read`].
pub struct Table {
    slots: Box<[AtomicU64]>,
    mask: usize,
}

/// A read of the index: held for a round, so that no rebuild runs under it. Each shard reads
/// under a lock of its own (a rebuild takes them all), so that the rounds of different
/// shards never write to a shared lock word.
pub struct IndexRead<'a> {
    _lock: RwLockReadGuard<'a, ()>,
    table: &'a Table,
}

impl std::ops::Deref for IndexRead<'_> {
    type Target = Table;
    fn deref(&self) -> &Table {
        self.table
    }
}

/// A lock of one shard's readers, on a cache line of its own.
#[repr(align(64))]
#[derive(Default)]
struct ReaderLock(RwLock<()>);

pub struct IdIndex {
    /// The current table, owned (a leaked box, freed on rebuild or drop): replaced only with
    /// every reader lock held for writing, so no reader can hold the old one.
    table: AtomicPtr<Table>,
    readers: Box<[ReaderLock]>,
    /// The current table's room, readable without a lock.
    capacity: AtomicUsize,
    windows: Box<[Window]>,
    /// Entries written since the last rebuild, per shard (each shard writes its own
    /// counter), plus the live entries the rebuild kept in `kept`.
    written: Box<[AtomicUsize]>,
    kept: AtomicUsize,
}

impl std::fmt::Debug for IdIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdIndex")
            .field("capacity", &self.capacity())
            .field("occupied", &self.occupied())
            .finish()
    }
}

impl IdIndex {
    /// The most entries a shard writes in one round (one held [`IndexRead`]).
    pub const ROUND_INSERTS_MAX: usize = 16_384;

    pub fn new(shards: usize) -> IdIndex {
        assert!((1..=SHARDS_MAX).contains(&shards), "an index serves 1 to {SHARDS_MAX} shards");
        let table = Box::into_raw(Box::new(Table::with_capacity(CAPACITY_MIN)));
        IdIndex {
            table: AtomicPtr::new(table),
            readers: (0..shards).map(|_| ReaderLock::default()).collect(),
            capacity: AtomicUsize::new(CAPACITY_MIN),
            windows: (0..shards).map(|_| Window::default()).collect(),
            written: (0..shards).map(|_| AtomicUsize::new(0)).collect(),
            kept: AtomicUsize::new(0),
        }
    }

    /// Holds the table for a round of work of `shard`; claims and lookups go through it.
    /// Another thread (a router) reads under any shard's lock.
    pub fn read(&self, shard: u32) -> IndexRead<'_> {
        let lock = self.readers[shard as usize % self.readers.len()].0.read();
        // SAFETY: the table is replaced and freed only with every reader lock held for
        // writing (see `maintain`), and this read lock is held as long as the reference.
        let table = unsafe { &*self.table.load(Ordering::Acquire) };
        IndexRead { _lock: lock, table }
    }

    /// Publishes the window of `shard`'s ring: sequence numbers `first..end` are its live
    /// records. Call it after every round, before the next [`IdIndex::maintain`].
    pub fn publish(&self, shard: u32, first: u64, end: u64) {
        let window = &self.windows[shard as usize];
        window.first.store(first, Ordering::Release);
        window.end.store(end, Ordering::Release);
    }

    /// Counts `count` entries `shard` wrote.
    pub fn wrote(&self, shard: u32, count: usize) {
        self.written[shard as usize].fetch_add(count, Ordering::Relaxed);
    }

    /// Entries written since the last rebuild, live or stale.
    pub fn occupied(&self) -> usize {
        self.kept.load(Ordering::Relaxed)
            + self.written.iter().map(|count| count.load(Ordering::Relaxed)).sum::<usize>()
    }

    pub fn capacity(&self) -> usize {
        self.capacity.load(Ordering::Relaxed)
    }

    /// Rebuilds the table when it is half full: drops the stale entries, and sizes the new
    /// table so that the live ones fill three eighths of it. Call it between rounds, holding
    /// no [`IndexRead`]; it waits for the rounds of other shards to end.
    pub fn maintain(&self) {
        if self.occupied() * 2 <= self.capacity() {
            return;
        }
        // Every shard's readers, in order: rounds end, none begins until the swap is done.
        let _locks: Vec<_> = self.readers.iter().map(|lock| lock.0.write()).collect();
        if self.occupied() * 2 <= self.capacity() {
            return;
        }
        // SAFETY: every reader lock is held for writing: nobody else reads the table.
        let table = unsafe { &*self.table.load(Ordering::Acquire) };
        let windows: Vec<(u64, u64)> = self
            .windows
            .iter()
            .map(|window| (window.first.load(Ordering::Acquire), window.end.load(Ordering::Acquire)))
            .collect();
        let live: Vec<u64> = table
            .slots
            .iter()
            .map(|slot| slot.load(Ordering::Relaxed))
            .filter(|&entry| entry != EMPTY && is_live(entry, &windows))
            .collect();
        let capacity = (live.len() * 8 / 3).next_power_of_two().max(CAPACITY_MIN);
        let rebuilt = Table::with_capacity(capacity);
        for entry in &live {
            rebuilt.insert_entry(*entry);
        }
        let old = self.table.swap(Box::into_raw(Box::new(rebuilt)), Ordering::AcqRel);
        // SAFETY: `old` came from `Box::into_raw`, and no reader can hold it (see above).
        drop(unsafe { Box::from_raw(old) });
        self.capacity.store(capacity, Ordering::Relaxed);
        for count in self.written.iter() {
            count.store(0, Ordering::Relaxed);
        }
        self.kept.store(live.len(), Ordering::Relaxed);
    }
}

impl Drop for IdIndex {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `Box::into_raw`, and `&mut self` has no readers.
        drop(unsafe { Box::from_raw(*self.table.get_mut()) });
    }
}

impl Table {
    fn with_capacity(capacity: usize) -> Table {
        assert!(capacity.is_power_of_two());
        let slots = crate::cache::huge_vec(capacity, || AtomicU64::new(EMPTY)).into_boxed_slice();
        Table { slots, mask: capacity - 1 }
    }

    /// Claims `hash` for the record `sequence` of `shard`, unless it is live somewhere.
    /// `here` answers, for an entry of `shard` with the same tag, the full sequence number
    /// of a live record of `shard` whose id is this one (its full hash compared), or `None`.
    /// Entries of the shards in the bitmask `skip` (shards that said their entries hold
    /// something else) are passed over. The walk goes on to the first empty slot, so that a
    /// record of `shard` is found even behind another shard's entry: `There` means the
    /// claimer's shard has no record of the id.
    pub fn claim(
        &self,
        hash: u64,
        shard: u32,
        sequence: u64,
        skip: u64,
        here: impl Fn(u32) -> Option<u64>,
    ) -> Claim {
        let tag = tag_of(hash);
        let mine = entry(tag, shard, sequence);
        let mut there = None;
        let mut index = bucket(hash) & self.mask;
        loop {
            let mut current = self.slots[index].load(Ordering::Acquire);
            if current == EMPTY {
                if let Some(place) = there {
                    return Claim::There(place);
                }
                match self.slots[index].compare_exchange(EMPTY, mine, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => return Claim::Claimed,
                    // Another shard wrote this slot first: look at what it wrote.
                    Err(written) => current = written,
                }
            }
            match matching(current, tag, shard, skip, &here) {
                Some(Claim::Here(found)) => return Claim::Here(found),
                Some(Claim::There(place)) => there = there.or(Some(place)),
                _ => {}
            }
            index = (index + 1) & self.mask;
        }
    }

    /// Finds where `hash` lives: in `shard` (resolved by `here`, as for a claim), or else
    /// the first entry of another shard with its tag that `skip` does not pass over.
    pub fn find(
        &self,
        hash: u64,
        shard: Option<u32>,
        skip: u64,
        here: impl Fn(u32) -> Option<u64>,
    ) -> Option<Claim> {
        let tag = tag_of(hash);
        let mut there = None;
        let mut index = bucket(hash) & self.mask;
        loop {
            let current = self.slots[index].load(Ordering::Acquire);
            if current == EMPTY {
                return there.map(Claim::There);
            }
            match matching(current, tag, shard.unwrap_or(u32::MAX), skip, &here) {
                Some(Claim::Here(found)) => return Some(Claim::Here(found)),
                Some(Claim::There(place)) => there = there.or(Some(place)),
                _ => {}
            }
            index = (index + 1) & self.mask;
        }
    }

    /// Asks for the cache line where the walk for `hash` starts, ahead of a claim or a find.
    pub fn prefetch(&self, hash: u64) {
        crate::cache::prefetch(&self.slots[bucket(hash) & self.mask]);
    }

    /// Writes an entry for a record whose id is already its shard's (a record moved to the
    /// back of its ring under a new sequence number): the old entry goes stale.
    pub fn insert(&self, hash: u64, shard: u32, sequence: u64) {
        self.insert_entry(entry(tag_of(hash), shard, sequence));
    }

    fn insert_entry(&self, entry: u64) {
        let mut index = self.bucket_of_entry(entry);
        loop {
            if self.slots[index].compare_exchange(EMPTY, entry, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                return;
            }
            index = (index + 1) & self.mask;
        }
    }

    /// The bucket an entry's walk starts at: recomputed from what the entry keeps, since a
    /// rebuild has only the entries. See [`bucket`].
    fn bucket_of_entry(&self, entry: u64) -> usize {
        bucket_from_tag(entry >> (SHARD_BITS + SEQUENCE_BITS)) & self.mask
    }
}

/// What an entry is to a search for `tag` from `shard`: its own live record of the id,
/// another shard's entry to ask, or nothing.
fn matching(
    entry: u64,
    tag: u64,
    shard: u32,
    skip: u64,
    here: &impl Fn(u32) -> Option<u64>,
) -> Option<Claim> {
    if entry >> (SHARD_BITS + SEQUENCE_BITS) != tag {
        return None;
    }
    let place = place_of(entry);
    if place.shard == shard {
        here(place.sequence).map(Claim::Here)
    } else if skip & (1 << place.shard) == 0 {
        Some(Claim::There(place))
    } else {
        None
    }
}

/// The tag of a 64-bit id hash: its top bits, marked.
fn tag_of(hash: u64) -> u64 {
    (hash >> (64 - TAG_BITS)) | TAG_MARK
}

/// Where the walk for `hash` starts. It must be computable from the entry alone (a rebuild
/// has only the entries), so it is a mix of the tag's bits, spread over the table.
fn bucket(hash: u64) -> usize {
    bucket_from_tag(tag_of(hash))
}

fn bucket_from_tag(tag: u64) -> usize {
    // Fibonacci hashing spreads the tag's 25 random bits over the table: evenly up to 2^25
    // slots (about 12 million live ids a runtime), in clusters of growing size beyond.
    (tag.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16) as usize
}

fn entry(tag: u64, shard: u32, sequence: u64) -> u64 {
    debug_assert!((shard as usize) < SHARDS_MAX);
    (tag << (SHARD_BITS + SEQUENCE_BITS)) | (u64::from(shard) << SEQUENCE_BITS) | (sequence & 0xFFFF_FFFF)
}

fn place_of(entry: u64) -> Place {
    Place {
        shard: ((entry >> SEQUENCE_BITS) & ((1 << SHARD_BITS) - 1)) as u32,
        sequence: (entry & 0xFFFF_FFFF) as u32,
    }
}

/// Whether the low 32 bits `sequence` fall in the window `first..end` (modulo 2^32).
pub fn in_window(sequence: u32, first: u64, end: u64) -> Option<u64> {
    let offset = sequence.wrapping_sub(first as u32) as u64;
    (offset < end.saturating_sub(first)).then_some(first + offset)
}

fn is_live(entry: u64, windows: &[(u64, u64)]) -> bool {
    let place = place_of(entry);
    windows
        .get(place.shard as usize)
        .is_some_and(|&(first, end)| in_window(place.sequence, first, end).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u64) -> u64 {
        n.wrapping_mul(0xD6E8_FEB8_6659_FD93).rotate_left(17) ^ n
    }

    /// A shard's records in a test: sequence numbers `first..end`, each with its hash.
    struct Ring {
        shard: u32,
        first: u64,
        hashes: Vec<u64>,
    }

    impl Ring {
        fn here(&self, hash: u64) -> impl Fn(u32) -> Option<u64> + '_ {
            move |sequence| {
                let full = in_window(sequence, self.first, self.first + self.hashes.len() as u64)?;
                (self.hashes[(full - self.first) as usize] == hash).then_some(full)
            }
        }

        fn claim(&mut self, index: &IdIndex, hash: u64) -> Claim {
            let sequence = self.first + self.hashes.len() as u64;
            let claim = index.read(self.shard).claim(hash, self.shard, sequence, 0, self.here(hash));
            if claim == Claim::Claimed {
                self.hashes.push(hash);
                index.wrote(self.shard, 1);
            }
            claim
        }

        fn forget_first(&mut self, index: &IdIndex) {
            self.hashes.remove(0);
            self.first += 1;
            self.publish(index);
        }

        fn publish(&self, index: &IdIndex) {
            index.publish(self.shard, self.first, self.first + self.hashes.len() as u64);
        }
    }

    #[test]
    fn an_id_is_claimed_once_across_shards() {
        let index = IdIndex::new(2);
        let (mut a, mut b) =
            (Ring { shard: 0, first: 0, hashes: vec![] }, Ring { shard: 1, first: 0, hashes: vec![] });
        assert_eq!(a.claim(&index, hash(1)), Claim::Claimed);
        a.publish(&index);
        assert_eq!(a.claim(&index, hash(1)), Claim::Here(0), "a repeat on the same shard finds its record");
        assert_eq!(b.claim(&index, hash(1)), Claim::There(Place { shard: 0, sequence: 0 }));
        assert_eq!(b.claim(&index, hash(2)), Claim::Claimed);
        b.publish(&index);
        let find = |shard, hash| index.read(0).find(hash, shard, 0, |_| None);
        assert_eq!(find(None, hash(2)), Some(Claim::There(Place { shard: 1, sequence: 0 })));
        assert_eq!(find(None, hash(3)), None);
    }

    #[test]
    fn a_place_another_shard_disowns_is_passed_over() {
        let index = IdIndex::new(2);
        let mut a = Ring { shard: 0, first: 0, hashes: vec![] };
        let mut b = Ring { shard: 1, first: 0, hashes: vec![] };
        a.claim(&index, hash(7));
        a.forget_first(&index);
        // Shard 0 forgot the record: its entry is stale, but only shard 0 can say so.
        let there = b.claim(&index, hash(7));
        let Claim::There(place) = there else { panic!("{there:?}") };
        let sequence = b.first + b.hashes.len() as u64;
        assert_eq!(
            index.read(1).claim(hash(7), 1, sequence, 1 << place.shard, b.here(hash(7))),
            Claim::Claimed
        );
    }

    #[test]
    fn a_rebuild_keeps_the_live_entries_only() {
        let index = IdIndex::new(1);
        let mut ring = Ring { shard: 0, first: 0, hashes: vec![] };
        // Claim and forget far more than the smallest table holds; keep the last 1,000.
        for n in 0..(CAPACITY_MIN as u64 * 3) {
            index.maintain();
            assert_eq!(ring.claim(&index, hash(n)), Claim::Claimed, "{n}");
            if ring.hashes.len() > 1_000 {
                ring.forget_first(&index);
            }
            ring.publish(&index);
            assert!(index.occupied() <= index.capacity() / 2 + 1, "rebuilt when half full");
        }
        index.maintain();
        let last = CAPACITY_MIN as u64 * 3 - 1;
        assert_eq!(ring.claim(&index, hash(last)), Claim::Here(ring.first + ring.hashes.len() as u64 - 1));
        assert_eq!(index.capacity(), CAPACITY_MIN, "the live entries fit the smallest table");
        // A forgotten id is anybody's again.
        assert_eq!(ring.claim(&index, hash(0)), Claim::Claimed);
    }

    #[test]
    fn racing_claims_of_one_id_let_exactly_one_win() {
        for round in 0..200u64 {
            let index = IdIndex::new(4);
            let id = hash(round);
            let winners = std::sync::atomic::AtomicUsize::new(0);
            std::thread::scope(|scope| {
                for shard in 0..4u32 {
                    let (index, winners) = (&index, &winners);
                    scope.spawn(move || {
                        // Some unrelated ids first, so the threads collide at varied places.
                        for n in 0..(round % 7) {
                            index.read(shard).insert(hash(1_000_000 + u64::from(shard) * 100 + n), shard, n);
                        }
                        if index.read(shard).claim(id, shard, 99, 0, |_| None) == Claim::Claimed {
                            winners.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
            });
            assert_eq!(winners.into_inner(), 1, "round {round}");
        }
    }

    #[test]
    fn windows_wrap_modulo_two_to_the_32() {
        let first = (1u64 << 32) - 2;
        assert_eq!(in_window(u32::MAX - 1, first, first + 4), Some(first));
        assert_eq!(in_window(1, first, first + 4), Some(first + 3));
        assert_eq!(in_window(2, first, first + 4), None);
        assert_eq!(in_window(u32::MAX - 2, first, first + 4), None);
    }
}
