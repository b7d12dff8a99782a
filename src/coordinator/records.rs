//! The records of one ledger partition: 48 bytes each, fixed size and without pointers, in a
//! ring in creation order; what only some records need (an open reservation's content, an
//! answer that does not fit) lives beside them in a side table.
//!
//! A record names its purchase by 80 bits of the id's keyed hash ([`Key`]), not by the id:
//! the id can be 64 characters, and every remembered purchase would pay for it. The content
//! a repeat must match (amount, goods, mode) is a 48-bit keyed fingerprint; the customer is
//! kept whole, because a repeat by another customer is refused differently (see the
//! ledger). The answer a repeat gets again is rebuilt from two 64-bit values and the state.
//!
//! Appending and forgetting walk the ring sequentially; an id finds its record through the
//! partition's [`super::index::IdIndex`] entry (its shard and sequence number). A record
//! still open when it reaches the front moves to the back, under a new sequence number and a
//! new index entry, so an open reservation never holds up forgetting.
//!
//! Invariants:
//! - `ring[i]` has sequence number `first_sequence + i`;
//! - a record has a side entry exactly when its `SIDE` flag is set;
//! - a partition holds at most [`Records::LIVE_MAX`] records, so the index's 32-bit
//!   sequence numbers are exact.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::index::{in_window, Claim, IndexRead};
use super::{Deducted, Holds, Mode};
use crate::domain::account::Goods;
use crate::domain::{Money, Month, PurchaseId, Rejection, Timestamp, Uin};

/// 80 bits of a purchase id's keyed hash: 2^-80 that two ids of a partition share one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Key {
    /// The index's tag and bucket come from these bits.
    pub low: u64,
    pub high: u16,
}

/// The keys of the hashes of ids and contents, drawn once per runtime (every shard must
/// hash an id alike, for the shared index).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Keys {
    id: (u64, u64),
    content: (u64, u64),
}

impl Keys {
    /// Fresh random keys: clients choose purchase ids, so hashes must be unpredictable.
    pub fn random() -> Keys {
        use rand::RngCore;
        let mut rng = rand::thread_rng();
        Keys { id: (rng.next_u64(), rng.next_u64()), content: (rng.next_u64(), rng.next_u64()) }
    }

    pub fn id(&self, id: &PurchaseId) -> Key {
        use std::hash::Hasher;
        let mut hasher = siphasher::sip128::SipHasher13::new_with_keys(self.id.0, self.id.1);
        hasher.write(id.as_str().as_bytes());
        let hash = siphasher::sip128::Hasher128::finish128(&hasher);
        Key { low: hash.h1, high: hash.h2 as u16 }
    }

    /// The fingerprint of what a repeat must match besides the customer. The plain purchase
    /// (one-shot, no goods), nearly every purchase, is a keyed multiply of its amount: a
    /// wrong match would only give a client that reused its own id with another amount its
    /// first answer instead of a conflict, so the fingerprint needs to be well spread, not
    /// unforgeable. Anything else goes through SipHash.
    pub fn content(&self, amount: Money, goods: &Option<Arc<Goods>>, mode: Mode) -> u64 {
        use std::hash::Hasher;
        if goods.is_none() && mode == Mode::OneShot {
            // An odd multiplier is a bijection of the 128-bit values; folding spreads it.
            let mixed = (amount.units() as u128 ^ u128::from(self.content.0))
                .wrapping_mul(u128::from(self.content.1 | 1));
            return (mixed as u64) ^ ((mixed >> 64) as u64);
        }
        let mut hasher = siphasher::sip::SipHasher13::new_with_keys(self.content.0, self.content.1);
        hasher.write_i128(amount.units());
        match goods.as_deref() {
            None => hasher.write_u8(0),
            Some(goods) => {
                hasher.write_u8(1);
                hasher.write_u8(goods.pay as u8);
                match &goods.product {
                    None => hasher.write_u8(0),
                    Some(product) => {
                        hasher.write_u8(1);
                        hasher.write_usize(product.len());
                        hasher.write(product.as_bytes());
                    }
                }
            }
        }
        match mode {
            Mode::OneShot => hasher.write_u8(0),
            Mode::Reserve { timeout_ms } => {
                hasher.write_u8(1);
                hasher.write_i64(timeout_ms);
            }
        }
        hasher.finish()
    }
}

/// The state of a purchase record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum State {
    InFlight = 0,
    Reserved = 1,
    Committed = 2,
    Cancelled = 3,
    Expired = 4,
    Refused = 5,
}

/// The refusals a record keeps in place: the ones a purchase's accounts give. Any other is
/// kept in the side table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
enum Refusal {
    Side = 0,
    UnknownUin = 1,
    WrongKind = 2,
    Suspended = 3,
    InsufficientCustomerCredit = 4,
    InsufficientPartnerCredit = 5,
}

const FINGERPRINT_BITS: u32 = 48;
const STATE_SHIFT: u32 = FINGERPRINT_BITS;
const REFUSAL_SHIFT: u32 = STATE_SHIFT + 3;
const SIDE: u64 = 1 << (REFUSAL_SHIFT + 3);
const SETTLING: u64 = SIDE << 1;
const RESERVATION: u64 = SIDE << 2;
const TIME_BITS: u32 = 48;

/// One remembered purchase. 48 bytes, `Copy`, no pointers: what the journal can write as it
/// is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(C)]
pub struct Record {
    /// The key's low 64 bits.
    id: u64,
    /// The key's high 16 bits, then 48 bits of when the record was resolved (ms since the
    /// epoch; 0 while in flight or reserved).
    id_and_time: u64,
    pub customer: u64,
    /// The content's fingerprint (48 bits), then the state, the kind of refusal and flags.
    content: u64,
    /// The answer a repeat gets: the customer's and the partner's available credit of a
    /// purchase, the deadline of a reservation, the available and needed credit of a
    /// refusal for credit.
    values: [i64; 2],
}

const _: () = assert!(std::mem::size_of::<Record>() == 48);

impl Record {
    fn new(key: Key, customer: Uin, fingerprint: u64, reservation: bool) -> Record {
        Record {
            id: key.low,
            id_and_time: u64::from(key.high) << TIME_BITS,
            customer: customer.0,
            content: (fingerprint & ((1 << FINGERPRINT_BITS) - 1))
                | ((State::InFlight as u64) << STATE_SHIFT)
                | if reservation { RESERVATION } else { 0 },
            values: [0; 2],
        }
    }

    pub fn key(&self) -> Key {
        Key { low: self.id, high: (self.id_and_time >> TIME_BITS) as u16 }
    }

    pub fn customer(&self) -> Uin {
        Uin(self.customer)
    }

    /// Whether a request's content is this record's (the customer is compared apart).
    pub fn same_content(&self, fingerprint: u64) -> bool {
        self.content & ((1 << FINGERPRINT_BITS) - 1) == fingerprint & ((1 << FINGERPRINT_BITS) - 1)
    }

    pub fn state(&self) -> State {
        match (self.content >> STATE_SHIFT) & 0b111 {
            0 => State::InFlight,
            1 => State::Reserved,
            2 => State::Committed,
            3 => State::Cancelled,
            4 => State::Expired,
            _ => State::Refused,
        }
    }

    pub fn set_state(&mut self, state: State) {
        self.content = (self.content & !(0b111 << STATE_SHIFT)) | ((state as u64) << STATE_SHIFT);
    }

    pub fn is_reservation(&self) -> bool {
        self.content & RESERVATION != 0
    }

    pub fn settling(&self) -> bool {
        self.content & SETTLING != 0
    }

    pub fn set_settling(&mut self, settling: bool) {
        self.content = if settling { self.content | SETTLING } else { self.content & !SETTLING };
    }

    fn has_side(&self) -> bool {
        self.content & SIDE != 0
    }

    fn refusal(&self) -> Refusal {
        match (self.content >> REFUSAL_SHIFT) & 0b111 {
            1 => Refusal::UnknownUin,
            2 => Refusal::WrongKind,
            3 => Refusal::Suspended,
            4 => Refusal::InsufficientCustomerCredit,
            5 => Refusal::InsufficientPartnerCredit,
            _ => Refusal::Side,
        }
    }

    fn set_refusal(&mut self, refusal: Refusal) {
        self.content = (self.content & !(0b111 << REFUSAL_SHIFT)) | ((refusal as u64) << REFUSAL_SHIFT);
    }

    /// When the record reached a final state (or, for an expired or settling reservation,
    /// when its release began); `None` while in flight or reserved.
    pub fn resolved_at(&self) -> Option<Timestamp> {
        let ms = self.id_and_time & ((1 << TIME_BITS) - 1);
        (ms != 0).then_some(Timestamp(ms as i64))
    }

    /// Marks the record resolved at `now` (an instant before 1 ms past the epoch counts as
    /// 1 ms: 0 means unresolved).
    fn set_resolved_at(&mut self, now: Timestamp) {
        let ms = now.0.clamp(1, (1 << TIME_BITS) - 1) as u64;
        self.id_and_time = (self.id_and_time & !((1 << TIME_BITS) - 1)) | ms;
    }
}

/// What a record keeps beside it: the full content of an open reservation, and answers that
/// do not fit the record.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Side {
    pub open: Option<Box<Open>>,
    /// The first answer's voucher deductions (the customer's, the partner's), when any.
    pub deducted: Deducted,
    /// The first answer's two amounts, when either does not fit 64 bits.
    pub values: Option<[Money; 2]>,
    /// A refusal other than the ones a record keeps in place.
    pub refusal: Option<Rejection>,
}

/// An open reservation: what its commit, cancel or expiry needs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Open {
    pub id: PurchaseId,
    pub amount: Money,
    pub charged: Uin,
    pub deadline: Timestamp,
    /// The bill month its charges are booked to: the month it was reserved in.
    pub month: Month,
    pub holds: Holds,
    pub goods: Option<Arc<Goods>>,
}

/// The first answer of a record, as the ledger rebuilds it for a repeat.
pub enum Answer {
    Purchased {
        customer_available: Money,
        partner_available: Money,
        deducted: Deducted,
    },
    Reserved {
        deadline: Timestamp,
        deducted: Deducted,
    },
    /// `charged` is filled in by the ledger, which knows each customer's partner.
    Refused(RefusalOf),
}

/// A refusal as a record keeps it: the ledger turns it into a [`Rejection`].
pub enum RefusalOf {
    UnknownUin,
    WrongKind,
    Suspended,
    InsufficientCustomerCredit { available: Money, needed: Money },
    InsufficientPartnerCredit { available: Money, needed: Money },
    Other(Rejection),
}

/// The records of one partition.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Records {
    ring: VecDeque<Record>,
    /// The sequence number of `ring[0]`.
    first_sequence: u64,
    /// Side entries by sequence number.
    side: FxHashMap<u64, Side>,
    /// Records not yet resolved (in flight or reserved).
    unresolved: usize,
}

impl Records {
    /// At most this many live records (the capacity plus open reservations) per partition:
    /// the index tells sequence numbers apart modulo 2^32, and a stale entry is dropped at
    /// the index's next rebuild, long before the ring could wrap around onto it.
    pub const LIVE_MAX: usize = 1 << 28;

    /// Records with room for `capacity` (at most [`Records::PREALLOCATED_MAX`] reserved up
    /// front), on huge pages where the system has them: the ring is written at its tail and
    /// read at random by repeats and sagas.
    pub fn with_capacity(capacity: usize) -> Records {
        let capacity = capacity.min(Records::PREALLOCATED_MAX);
        let ring: VecDeque<Record> = VecDeque::with_capacity(capacity);
        // An empty ring's first slice starts at its buffer.
        crate::cache::huge_pages(ring.as_slices().0.as_ptr(), capacity * std::mem::size_of::<Record>());
        Records { ring, ..Records::default() }
    }

    /// The most records room is reserved for up front (192 MiB of address space; pages are
    /// used only as records fill them).
    pub const PREALLOCATED_MAX: usize = 1 << 22;

    /// Takes the records of `image` (a snapshot's), keeping this one's room.
    pub fn restore(&mut self, image: Records) {
        self.ring.clear();
        self.ring.extend(image.ring);
        self.first_sequence = image.first_sequence;
        self.side = image.side;
        self.unresolved = image.unresolved;
    }

    /// Each live record's sequence number and key, oldest first.
    pub fn keys(&self) -> impl Iterator<Item = (u64, Key)> + '_ {
        self.ring
            .iter()
            .enumerate()
            .map(|(offset, record)| (self.first_sequence + offset as u64, record.key()))
    }

    /// The sequence numbers of the live records: `first..end`.
    pub fn window(&self) -> (u64, u64) {
        (self.first_sequence, self.first_sequence + self.ring.len() as u64)
    }

    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// The full sequence number of the live record at the 32-bit `sequence` if its key is
    /// `key`: how an index entry is checked.
    pub fn here(&self, sequence: u32, key: Key) -> Option<u64> {
        let (first, end) = self.window();
        let full = in_window(sequence, first, end)?;
        (self.ring[(full - first) as usize].key() == key).then_some(full)
    }

    /// The record with `key`, looked for first at sequence number `near` (where a saga saw
    /// it begin), then through the index.
    pub fn locate(&self, table: &IndexRead<'_>, shard: u32, key: Key, near: u64) -> Option<u64> {
        if let Some(offset) = near.checked_sub(self.first_sequence) {
            if self.ring.get(offset as usize).is_some_and(|record| record.key() == key) {
                return Some(near);
            }
        }
        match table.find(key.low, Some(shard), 0, |sequence| self.here(sequence, key)) {
            Some(Claim::Here(sequence)) => Some(sequence),
            _ => None,
        }
    }

    pub fn get(&self, sequence: u64) -> &Record {
        &self.ring[(sequence - self.first_sequence) as usize]
    }

    pub fn get_mut(&mut self, sequence: u64) -> &mut Record {
        &mut self.ring[(sequence - self.first_sequence) as usize]
    }

    /// Appends an unresolved record for an id just claimed; answers its sequence number,
    /// which must be the one the claim was made for ([`Records::window`]'s end).
    pub fn push(&mut self, key: Key, customer: Uin, fingerprint: u64, reservation: bool) -> u64 {
        let sequence = self.window().1;
        self.ring.push_back(Record::new(key, customer, fingerprint, reservation));
        self.unresolved += 1;
        sequence
    }

    /// Marks a record resolved at `now`.
    pub fn resolve(&mut self, sequence: u64, now: Timestamp) {
        let record = self.get_mut(sequence);
        assert!(record.resolved_at().is_none(), "a record is resolved once");
        record.set_resolved_at(now);
        self.unresolved -= 1;
    }

    pub fn side(&self, sequence: u64) -> Option<&Side> {
        self.get(sequence).has_side().then(|| &self.side[&sequence])
    }

    pub fn side_mut(&mut self, sequence: u64) -> &mut Side {
        let record = self.get_mut(sequence);
        record.content |= SIDE;
        self.side.entry(sequence).or_default()
    }

    /// Keeps `answer` as the record's first answer (and its state with it).
    pub fn answer(&mut self, sequence: u64, state: State, answer: Answer) {
        let fit = |money: Money| i64::try_from(money.units()).ok();
        let (values, refusal, deducted, spill) = match answer {
            Answer::Purchased { customer_available, partner_available, deducted } => {
                ([customer_available, partner_available], Refusal::Side, deducted, None)
            }
            Answer::Reserved { deadline, deducted } => {
                ([Money::ZERO; 2], Refusal::Side, deducted, Some(deadline))
            }
            Answer::Refused(refusal) => {
                let (kind, values, other) = match refusal {
                    RefusalOf::UnknownUin => (Refusal::UnknownUin, [Money::ZERO; 2], None),
                    RefusalOf::WrongKind => (Refusal::WrongKind, [Money::ZERO; 2], None),
                    RefusalOf::Suspended => (Refusal::Suspended, [Money::ZERO; 2], None),
                    RefusalOf::InsufficientCustomerCredit { available, needed } => {
                        (Refusal::InsufficientCustomerCredit, [available, needed], None)
                    }
                    RefusalOf::InsufficientPartnerCredit { available, needed } => {
                        (Refusal::InsufficientPartnerCredit, [available, needed], None)
                    }
                    RefusalOf::Other(rejection) => (Refusal::Side, [Money::ZERO; 2], Some(rejection)),
                };
                if let Some(rejection) = other {
                    self.side_mut(sequence).refusal = Some(rejection);
                }
                (values, kind, None, None)
            }
        };
        let record = self.get_mut(sequence);
        record.set_state(state);
        record.set_refusal(refusal);
        match spill {
            Some(deadline) => record.values = [deadline.0, 0],
            None => match (fit(values[0]), fit(values[1])) {
                (Some(first), Some(second)) => record.values = [first, second],
                _ => self.side_mut(sequence).values = Some(values),
            },
        }
        if deducted.is_some() {
            self.side_mut(sequence).deducted = deducted;
        }
    }

    /// The first answer a record keeps, if it has one (not while in flight).
    pub fn first_answer(&self, sequence: u64) -> Option<Answer> {
        let record = self.get(sequence);
        let side = self.side(sequence);
        let deducted = || side.and_then(|side| side.deducted.clone());
        let values = || match side.and_then(|side| side.values) {
            Some(values) => values,
            None => record.values.map(|value| Money::from_fixed(i128::from(value))),
        };
        match record.state() {
            State::InFlight => None,
            State::Refused => Some(Answer::Refused(match record.refusal() {
                Refusal::UnknownUin => RefusalOf::UnknownUin,
                Refusal::WrongKind => RefusalOf::WrongKind,
                Refusal::Suspended => RefusalOf::Suspended,
                Refusal::InsufficientCustomerCredit => {
                    let [available, needed] = values();
                    RefusalOf::InsufficientCustomerCredit { available, needed }
                }
                Refusal::InsufficientPartnerCredit => {
                    let [available, needed] = values();
                    RefusalOf::InsufficientPartnerCredit { available, needed }
                }
                Refusal::Side => RefusalOf::Other(
                    side.and_then(|side| side.refusal.clone()).expect("a refusal kept beside its record"),
                ),
            })),
            _ if record.is_reservation() => {
                Some(Answer::Reserved { deadline: Timestamp(record.values[0]), deducted: deducted() })
            }
            _ => {
                let [customer_available, partner_available] = values();
                Some(Answer::Purchased { customer_available, partner_available, deducted: deducted() })
            }
        }
    }

    /// Forgets resolved records from the front while they are past the retention window or
    /// the ring holds more resolved records than `capacity`. A record still unresolved at
    /// the front moves to the back under a new sequence number (its old index entry goes
    /// stale). Answers how many index entries it wrote.
    pub fn evict(
        &mut self,
        table: &IndexRead<'_>,
        shard: u32,
        now: Timestamp,
        retention_ms: i64,
        capacity: usize,
    ) -> usize {
        let mut written = 0;
        // Each unresolved record is moved to the back at most once per call.
        let mut moves_left = self.unresolved;
        while let Some(front) = self.ring.front() {
            let over_capacity = self.ring.len() - self.unresolved > capacity;
            match front.resolved_at() {
                Some(resolved_at) if over_capacity || resolved_at.plus_ms(retention_ms) <= now => {
                    let record = self.ring.pop_front().expect("front exists");
                    if record.has_side() {
                        self.side.remove(&self.first_sequence);
                    }
                    self.first_sequence += 1;
                }
                None if over_capacity && moves_left > 0 => {
                    moves_left -= 1;
                    let record = self.ring.pop_front().expect("front exists");
                    let old = self.first_sequence;
                    self.first_sequence += 1;
                    let sequence = self.window().1;
                    self.ring.push_back(record);
                    if record.has_side() {
                        let side = self.side.remove(&old).expect("a side entry for its flag");
                        self.side.insert(sequence, side);
                    }
                    table.insert(record.key().low, shard, sequence);
                    written += 1;
                }
                _ => break,
            }
        }
        written
    }
}
