//! Reply slots: how a single call gets its answer back from a shard without allocating.
//!
//! A fixed pool of slots, each an atomic state, a value cell and a waker. A caller takes a
//! free slot, sends its request with the slot's index, and awaits [`SlotFuture`]; the shard
//! writes the answer into the slot and wakes the caller. Free indexes live in a lock-free
//! queue. When the pool is empty callers fall back to a one-shot channel.
//!
//! Invariants:
//! - a slot's value is written only by the one shard that received its index, while the
//!   state is `WAITING`; it is read only by the owner of the index after it saw `READY`;
//! - an index returns to the free queue exactly once per use: by the caller after reading
//!   the answer, or by whichever of the caller (dropping its future) and the shard comes
//!   second when the caller stopped waiting (`ABANDONED`).

use std::cell::UnsafeCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use crossbeam_queue::ArrayQueue;
use futures::task::AtomicWaker;

const WAITING: u8 = 0;
const READY: u8 = 1;
const ABANDONED: u8 = 2;

struct Slot<T> {
    state: AtomicU8,
    value: UnsafeCell<Option<T>>,
    waker: AtomicWaker,
}

/// A fixed pool of reply slots.
pub struct Slots<T> {
    slots: Box<[Slot<T>]>,
    free: ArrayQueue<u32>,
}

// The value cell is handed between threads by the state protocol described above: at any
// moment exactly one side may touch it.
unsafe impl<T: Send> Sync for Slots<T> {}
unsafe impl<T: Send> Send for Slots<T> {}

impl<T: Send> Slots<T> {
    pub fn new(capacity: usize) -> Arc<Slots<T>> {
        let capacity = capacity.clamp(1, u32::MAX as usize);
        let free = ArrayQueue::new(capacity);
        for index in 0..capacity as u32 {
            let _ = free.push(index);
        }
        let slots = (0..capacity)
            .map(|_| Slot {
                state: AtomicU8::new(WAITING),
                value: UnsafeCell::new(None),
                waker: AtomicWaker::new(),
            })
            .collect();
        Arc::new(Slots { slots, free })
    }

    /// A free slot, or `None` when all are in use.
    pub fn acquire(self: &Arc<Self>) -> Option<SlotFuture<T>> {
        let index = self.free.pop()?;
        Some(SlotFuture { slots: self.clone(), index, done: false, sent: false })
    }

    /// Delivers the answer for `index`. Called once per acquired slot, by the shard.
    pub fn complete(&self, index: u32, value: T) {
        let slot = &self.slots[index as usize];
        // SAFETY: while the state is WAITING only the shard holding the index touches the cell.
        unsafe { *slot.value.get() = Some(value) };
        match slot.state.compare_exchange(WAITING, READY, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => slot.waker.wake(),
            Err(_) => {
                // The caller stopped waiting: nobody will read the answer.
                // SAFETY: the caller gave up the slot; the shard is its last user.
                unsafe { *slot.value.get() = None };
                slot.state.store(WAITING, Ordering::Release);
                let _ = self.free.push(index);
            }
        }
    }
}

/// The index to send with the request, and the future of its answer.
pub struct SlotFuture<T: Send> {
    slots: Arc<Slots<T>>,
    index: u32,
    done: bool,
    /// The index left with a request: until then nobody else knows it, and dropping the
    /// future frees the slot at once.
    sent: bool,
}

impl<T: Send> SlotFuture<T> {
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Records that the request carrying the index was sent.
    pub fn mark_sent(&mut self) {
        self.sent = true;
    }

    fn take(&mut self) -> T {
        let slot = &self.slots.slots[self.index as usize];
        // SAFETY: the state is READY, so the shard is done with the cell.
        let value = unsafe { (*slot.value.get()).take() }.expect("a ready slot holds a value");
        slot.state.store(WAITING, Ordering::Release);
        self.done = true;
        let _ = self.slots.free.push(self.index);
        value
    }
}

impl<T: Send> Future for SlotFuture<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let slot = &self.slots.slots[self.index as usize];
        if slot.state.load(Ordering::Acquire) == READY {
            return Poll::Ready(self.take());
        }
        slot.waker.register(cx.waker());
        // Check again: the answer may have arrived before the waker was registered.
        if slot.state.load(Ordering::Acquire) == READY {
            return Poll::Ready(self.take());
        }
        Poll::Pending
    }
}

impl<T: Send> Drop for SlotFuture<T> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if !self.sent {
            // No shard has the index: the slot is free again.
            let _ = self.slots.free.push(self.index);
            return;
        }
        let slot = &self.slots.slots[self.index as usize];
        if slot.state.compare_exchange(WAITING, ABANDONED, Ordering::AcqRel, Ordering::Acquire).is_err() {
            // The answer arrived: read it to drop it, and free the slot.
            let _ = self.take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_arrive_across_threads_and_slots_are_reused() {
        let slots: Arc<Slots<u64>> = Slots::new(4);
        for round in 0..1000u64 {
            let future = slots.acquire().expect("a free slot");
            let index = future.index();
            let mut future = future;
            future.mark_sent();
            let completer = slots.clone();
            std::thread::spawn(move || completer.complete(index, round));
            assert_eq!(future.await, round);
        }
        assert_eq!(slots.free.len(), 4, "every slot came back");
    }

    #[test]
    fn an_abandoned_slot_is_freed_by_whoever_comes_second() {
        let slots: Arc<Slots<String>> = Slots::new(2);
        let mut future = slots.acquire().unwrap();
        future.mark_sent();
        let index = future.index();
        drop(future);
        assert_eq!(slots.free.len(), 1, "still in use until the answer comes");
        slots.complete(index, "late".into());
        assert_eq!(slots.free.len(), 2);

        let mut future = slots.acquire().unwrap();
        future.mark_sent();
        slots.complete(future.index(), "early".into());
        drop(future);
        assert_eq!(slots.free.len(), 2);

        let unsent = slots.acquire().unwrap();
        drop(unsent);
        assert_eq!(slots.free.len(), 2, "a request that never left frees its slot");
        let _first = slots.acquire().unwrap();
        let _second = slots.acquire().unwrap();
        assert!(slots.acquire().is_none(), "the pool is bounded");
    }
}
