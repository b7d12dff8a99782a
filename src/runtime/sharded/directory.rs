//! Where each account lives: UIN -> (shard, slot in the shard's dense vector of accounts).
//!
//! Every purchase, single call and batch looks its customer up here once, on the caller's
//! thread, before it reaches the shard; the shard then finds the account by its slot, with
//! no lookup of its own. So reads are lock-free: an open-addressing table of atomic (key,
//! value) pairs behind an atomic pointer. Writes come only from account creation, which the
//! runtime serializes; a full table is copied into one twice the size and published, and
//! the old one is kept until the directory is dropped, so a reader that loaded it before
//! the copy is never left with freed memory (the old tables together are smaller than the
//! current one).
//!
//! Invariants:
//! - an entry, once written, never changes: accounts are never deleted or moved;
//! - the value is written before the key (release), and a reader reads the key before the
//!   value (acquire), so a reader that sees a key sees its value;
//! - a table is at most half full, so every walk ends at an empty slot.

use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::domain::Uin;

/// Where an account lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    pub shard: u32,
    pub slot: u32,
}

impl Place {
    fn pack(self) -> u64 {
        (u64::from(self.shard) << 32) | u64::from(self.slot)
    }

    fn unpack(value: u64) -> Place {
        Place { shard: (value >> 32) as u32, slot: value as u32 }
    }
}

/// The key of a UIN: never 0, the empty slot's.
fn key_of(uin: Uin) -> u64 {
    uin.0.wrapping_add(1)
}

/// A key and its value side by side: one cache line holds both.
#[derive(Default)]
struct Entry {
    key: AtomicU64,
    value: AtomicU64,
}

struct Table {
    entries: Box<[Entry]>,
    mask: usize,
}

impl Table {
    fn new(capacity: usize) -> Table {
        Table {
            entries: crate::cache::huge_vec(capacity, Entry::default).into_boxed_slice(),
            mask: capacity - 1,
        }
    }

    fn bucket(&self, key: u64) -> usize {
        // Fibonacci hashing spreads sequential UINs evenly.
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20) as usize & self.mask
    }

    fn get(&self, key: u64) -> Option<u64> {
        let mut index = self.bucket(key);
        loop {
            let entry = &self.entries[index];
            match entry.key.load(Ordering::Acquire) {
                0 => return None,
                found if found == key => return Some(entry.value.load(Ordering::Relaxed)),
                _ => index = (index + 1) & self.mask,
            }
        }
    }

    /// Writes a key known to be absent (the single writer checked).
    fn put(&self, key: u64, value: u64) {
        let mut index = self.bucket(key);
        while self.entries[index].key.load(Ordering::Relaxed) != 0 {
            index = (index + 1) & self.mask;
        }
        self.entries[index].value.store(value, Ordering::Relaxed);
        self.entries[index].key.store(key, Ordering::Release);
    }
}

pub struct Directory {
    current: AtomicPtr<Table>,
    /// Every table ever published, the current one last: freed when the directory is. Boxed,
    /// because `current` points at a table, which must not move when the vector grows.
    #[allow(clippy::vec_box)]
    tables: Mutex<Vec<Box<Table>>>,
    len: AtomicUsize,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory").field("len", &self.len()).finish()
    }
}

impl Directory {
    pub fn new() -> Directory {
        let mut first = Box::new(Table::new(1024));
        let current = AtomicPtr::new(&mut *first as *mut Table);
        Directory { current, tables: Mutex::new(vec![first]), len: AtomicUsize::new(0) }
    }

    fn table(&self) -> &Table {
        // SAFETY: `current` always points into a table that `tables` owns, and tables are
        // only dropped with the directory, which `&self` outlives here.
        unsafe { &*self.current.load(Ordering::Acquire) }
    }

    pub fn get(&self, uin: Uin) -> Option<Place> {
        self.table().get(key_of(uin)).map(Place::unpack)
    }

    /// Asks for the cache line where `uin`'s walk starts, ahead of [`Directory::get`].
    pub fn prefetch(&self, uin: Uin) {
        let table = self.table();
        crate::cache::prefetch(&table.entries[table.bucket(key_of(uin))]);
    }

    pub fn contains(&self, uin: Uin) -> bool {
        self.get(uin).is_some()
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Records where a new account lives. The runtime serializes creations; a UIN is put
    /// once.
    pub fn put(&self, uin: Uin, place: Place) {
        assert!(uin.0 != u64::MAX, "UIN {} is reserved", u64::MAX);
        let mut tables = self.tables.lock();
        debug_assert!(self.get(uin).is_none(), "{uin} placed twice");
        let len = self.len.load(Ordering::Relaxed) + 1;
        if len * 2 > self.table().entries.len() {
            self.grow(&mut tables, self.table().entries.len() * 2);
        }
        self.table().put(key_of(uin), place.pack());
        self.len.store(len, Ordering::Relaxed);
    }

    /// Makes room for `additional` more accounts at once: a creation of many accounts
    /// copies the table once instead of at every doubling, and the old tables it keeps
    /// stay small.
    pub fn reserve(&self, additional: usize) {
        let mut tables = self.tables.lock();
        let wanted = (self.len() + additional).saturating_mul(2).next_power_of_two();
        if wanted > self.table().entries.len() {
            self.grow(&mut tables, wanted);
        }
    }

    /// Publishes a copy of the current table with room for `capacity` entries.
    #[allow(clippy::vec_box)]
    fn grow(&self, tables: &mut Vec<Box<Table>>, capacity: usize) {
        let mut grown = Box::new(Table::new(capacity));
        for entry in self.table().entries.iter() {
            let key = entry.key.load(Ordering::Relaxed);
            if key != 0 {
                grown.put(key, entry.value.load(Ordering::Relaxed));
            }
        }
        self.current.store(&mut *grown as *mut Table, Ordering::Release);
        tables.push(grown);
    }

    /// Every UIN placed.
    pub fn uins(&self) -> Vec<Uin> {
        let table = self.table();
        table
            .entries
            .iter()
            .map(|entry| entry.key.load(Ordering::Acquire))
            .filter(|&key| key != 0)
            .map(|key| Uin(key.wrapping_sub(1)))
            .collect()
    }
}

impl Default for Directory {
    fn default() -> Directory {
        Directory::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_survive_growth_and_readers_see_them() {
        let directory = Directory::new();
        for uin in 0..10_000u64 {
            directory.put(Uin(uin * 7), Place { shard: (uin % 3) as u32, slot: uin as u32 });
        }
        assert_eq!(directory.len(), 10_000);
        for uin in 0..10_000u64 {
            assert_eq!(
                directory.get(Uin(uin * 7)),
                Some(Place { shard: (uin % 3) as u32, slot: uin as u32 })
            );
        }
        assert_eq!(directory.get(Uin(1)), None);
        directory.reserve(100_000);
        assert_eq!(directory.get(Uin(7)), Some(Place { shard: 1, slot: 1 }));
        let mut uins = directory.uins();
        uins.sort_unstable();
        assert_eq!(uins.len(), 10_000);
        assert_eq!(uins[9_999], Uin(9_999 * 7));
    }

    #[test]
    fn a_reader_racing_the_writer_sees_each_uin_whole_or_not_at_all() {
        let directory = Directory::new();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for uin in 0..50_000u64 {
                    directory.put(Uin(uin), Place { shard: 1, slot: uin as u32 });
                }
            });
            scope.spawn(|| {
                for round in 0..20 {
                    for uin in (round..50_000u64).step_by(97) {
                        if let Some(place) = directory.get(Uin(uin)) {
                            assert_eq!(place, Place { shard: 1, slot: uin as u32 });
                        }
                    }
                }
            });
        });
        assert_eq!(directory.len(), 50_000);
    }
}
