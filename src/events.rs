//! The in-process event bus: the engine publishes what happened (a customer's credit
//! crossing a warning level), subscribers (the server's webhooks) take it off the purchase
//! path.
//!
//! Each subscriber has its own bounded queue (a tokio `mpsc` channel, so that a subscriber
//! may await it from a task or block on it from a thread). Publishing tries each queue once:
//! a full queue drops the event for that subscriber and counts it, so a slow subscriber
//! never slows the engine and never holds its memory past its capacity.
//!
//! Invariant: [`EventBus::publish`] never blocks and never waits: with no subscriber it is
//! one atomic load; otherwise one uncontended read lock and one `try_send` per subscriber.
//! It allocates nothing per event but the copies of the event itself (the channel's slots
//! come in blocks of 32 that it allocates once and reuses).
//! Invariant: no JSON and no HTTP here: events are plain values.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::mpsc::{self, error::TrySendError};

use crate::domain::{Money, Threshold, Timestamp, Uin, WarningLevel};

pub use tokio::sync::mpsc::error::TryRecvError;

/// Something that happened in the engine that others may want to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    CreditWarning(CreditWarning),
}

/// A customer's available credit fell below a warning level (see
/// [`crate::domain::warning`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreditWarning {
    pub customer: Uin,
    /// The customer's parent: its reseller or second-level reseller (not the partner charged
    /// for its purchases, which for a second-level reseller's customer is the distributor).
    pub partner: Uin,
    pub level: WarningLevel,
    /// The custom threshold, for the custom levels; `None` for the presets.
    pub threshold: Option<Threshold>,
    /// The customer's total and available credit just after the crossing.
    pub total: Money,
    pub available: Money,
    /// When the engine saw the crossing (its clock).
    pub time: Timestamp,
}

/// The bus: shared as `Arc<EventBus>` by the engine, which publishes, and whoever subscribes.
pub struct EventBus {
    shared: Arc<Shared>,
}

/// What the bus and its subscriptions share: a subscription removes itself when dropped.
struct Shared {
    /// The queues. A `parking_lot::RwLock` and not a tokio one, because no await happens
    /// while it is held; publishers take it for reading only, so they never wait on each
    /// other, and only (un)subscribing writes.
    subscribers: RwLock<Vec<Subscriber>>,
    /// `subscribers.len()`, read without the lock: with no subscriber, publishing is this
    /// one load.
    subscriber_count: AtomicUsize,
    /// Events handed to a subscriber's queue, summed over every subscriber there ever was.
    published: AtomicU64,
    /// Events a full queue dropped, summed over every subscriber there ever was.
    dropped: AtomicU64,
    /// The id of the next subscription, to find it again when it is dropped.
    next_id: AtomicU64,
}

/// One subscriber, as the bus holds it.
struct Subscriber {
    id: u64,
    sender: mpsc::Sender<Event>,
    /// The subscription's own count of dropped events, shared with it.
    dropped: Arc<AtomicU64>,
}

impl EventBus {
    /// The largest queue a subscriber may have: a million events (about 100 MB when full).
    pub const CAPACITY_MAX: usize = 1_000_000;

    pub fn new() -> EventBus {
        EventBus {
            shared: Arc::new(Shared {
                subscribers: RwLock::new(Vec::new()),
                subscriber_count: AtomicUsize::new(0),
                published: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                next_id: AtomicU64::new(0),
            }),
        }
    }

    /// Hands `event` to every subscriber's queue, without waiting: a full queue drops it
    /// for that subscriber and counts it. The last subscriber gets the event itself, the
    /// others a copy.
    pub fn publish(&self, event: Event) {
        let shared = &*self.shared;
        if shared.subscriber_count.load(Ordering::Acquire) == 0 {
            return;
        }
        let subscribers = shared.subscribers.read();
        let Some((last, others)) = subscribers.split_last() else {
            return;
        };
        for subscriber in others {
            shared.offer(subscriber, event.clone());
        }
        shared.offer(last, event);
    }

    /// A new subscriber with a queue of `capacity` events; it sees the events published
    /// from now on, until it is dropped.
    ///
    /// # Panics
    /// When `capacity` is not 1 to [`EventBus::CAPACITY_MAX`] (configurations check it).
    pub fn subscribe(&self, capacity: usize) -> Subscription {
        assert!(
            (1..=Self::CAPACITY_MAX).contains(&capacity),
            "a subscription's capacity is 1 to {}, not {capacity}",
            Self::CAPACITY_MAX
        );
        let (sender, receiver) = mpsc::channel(capacity);
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let dropped = Arc::new(AtomicU64::new(0));
        let mut subscribers = self.shared.subscribers.write();
        subscribers.push(Subscriber { id, sender, dropped: dropped.clone() });
        self.shared.subscriber_count.store(subscribers.len(), Ordering::Release);
        Subscription { receiver, id, dropped, shared: self.shared.clone() }
    }

    /// Events handed to subscribers' queues (one per subscriber per event), in total.
    pub fn published(&self) -> u64 {
        self.shared.published.load(Ordering::Relaxed)
    }

    /// Events dropped because a subscriber's queue was full, in total.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Subscribers now.
    pub fn subscriber_count(&self) -> usize {
        self.shared.subscriber_count.load(Ordering::Relaxed)
    }
}

impl Default for EventBus {
    fn default() -> EventBus {
        EventBus::new()
    }
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("subscribers", &self.subscriber_count())
            .field("published", &self.published())
            .field("dropped", &self.dropped())
            .finish()
    }
}

/// The bus going away closes every subscription: each receives what is queued, then `None`.
impl Drop for EventBus {
    fn drop(&mut self) {
        let mut subscribers = self.shared.subscribers.write();
        subscribers.clear();
        self.shared.subscriber_count.store(0, Ordering::Release);
    }
}

impl Shared {
    fn offer(&self, subscriber: &Subscriber, event: Event) {
        match subscriber.sender.try_send(event) {
            Ok(()) => {
                self.published.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_)) => {
                subscriber.dropped.fetch_add(1, Ordering::Relaxed);
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            // The subscription is being dropped and will remove itself.
            Err(TrySendError::Closed(_)) => {}
        }
    }
}

/// The receiving end of one subscriber's queue. Dropping it unsubscribes.
pub struct Subscription {
    receiver: mpsc::Receiver<Event>,
    id: u64,
    dropped: Arc<AtomicU64>,
    shared: Arc<Shared>,
}

impl Subscription {
    /// The next event, waiting for it; `None` once the bus is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<Event> {
        self.receiver.recv().await
    }

    /// As [`Subscription::recv`], blocking the thread.
    ///
    /// # Panics
    /// When called within an asynchronous runtime (tokio's rule).
    pub fn blocking_recv(&mut self) -> Option<Event> {
        self.receiver.blocking_recv()
    }

    /// The next event if one is queued: `Empty` if none, `Disconnected` once the bus is gone
    /// and the queue is empty.
    pub fn try_recv(&mut self) -> Result<Event, TryRecvError> {
        self.receiver.try_recv()
    }

    /// Events this subscription's full queue dropped.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The counter behind [`Subscription::dropped`], for a reporter that outlives a borrow
    /// of the subscription (the webhook deliverer reads it while a delivery is under way).
    #[cfg(feature = "http")]
    pub(crate) fn dropped_counter(&self) -> Arc<AtomicU64> {
        self.dropped.clone()
    }

    /// Events waiting in the queue.
    pub fn len(&self) -> usize {
        self.receiver.len()
    }

    pub fn is_empty(&self) -> bool {
        self.receiver.is_empty()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut subscribers = self.shared.subscribers.write();
        subscribers.retain(|subscriber| subscriber.id != self.id);
        self.shared.subscriber_count.store(subscribers.len(), Ordering::Release);
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("queued", &self.len())
            .field("dropped", &self.dropped())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warning(customer: u64) -> Event {
        Event::CreditWarning(CreditWarning {
            customer: Uin(customer),
            partner: Uin(3),
            level: WarningLevel::Remaining25,
            threshold: None,
            total: Money::from_units(100),
            available: Money::from_units(20),
            time: Timestamp(1_767_225_600_000),
        })
    }

    fn customers(subscription: &mut Subscription) -> Vec<u64> {
        let mut seen = Vec::new();
        while let Ok(Event::CreditWarning(warning)) = subscription.try_recv() {
            seen.push(warning.customer.0);
        }
        seen
    }

    #[test]
    fn without_subscribers_publishing_counts_nothing() {
        let bus = EventBus::new();
        bus.publish(warning(1));
        assert_eq!((bus.published(), bus.dropped(), bus.subscriber_count()), (0, 0, 0));
    }

    #[test]
    fn every_subscriber_gets_every_event_in_order() {
        let bus = EventBus::new();
        let mut first = bus.subscribe(10);
        let mut second = bus.subscribe(10);
        for customer in 1..=3 {
            bus.publish(warning(customer));
        }
        assert_eq!(customers(&mut first), [1, 2, 3]);
        assert_eq!(customers(&mut second), [1, 2, 3]);
        assert_eq!((bus.published(), bus.dropped()), (6, 0));
        assert_eq!(first.try_recv(), Err(TryRecvError::Empty));
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking_the_others() {
        let bus = EventBus::new();
        let mut small = bus.subscribe(2);
        let mut large = bus.subscribe(100);
        for customer in 1..=5 {
            bus.publish(warning(customer));
        }
        assert_eq!(customers(&mut small), [1, 2]);
        assert_eq!(customers(&mut large), [1, 2, 3, 4, 5]);
        assert_eq!((small.dropped(), large.dropped()), (3, 0));
        assert_eq!((bus.published(), bus.dropped()), (7, 3));
        // Room again: the next event is queued.
        bus.publish(warning(6));
        assert_eq!(customers(&mut small), [6]);
    }

    #[test]
    fn dropping_a_subscription_unsubscribes() {
        let bus = EventBus::new();
        let first = bus.subscribe(1);
        let mut second = bus.subscribe(1);
        assert_eq!(bus.subscriber_count(), 2);
        drop(first);
        assert_eq!(bus.subscriber_count(), 1);
        bus.publish(warning(1));
        assert_eq!(customers(&mut second), [1]);
        assert_eq!((bus.published(), bus.dropped()), (1, 0));
        drop(second);
        assert_eq!(bus.subscriber_count(), 0);
        bus.publish(warning(2));
        assert_eq!(bus.published(), 1);
    }

    #[test]
    fn dropping_the_bus_ends_its_subscriptions_after_what_is_queued() {
        let bus = EventBus::new();
        let mut subscription = bus.subscribe(4);
        bus.publish(warning(1));
        drop(bus);
        assert_eq!(customers(&mut subscription), [1]);
        assert_eq!(subscription.try_recv(), Err(TryRecvError::Disconnected));
    }

    #[test]
    fn publishing_from_threads_reaches_an_async_subscriber() {
        let bus = Arc::new(EventBus::new());
        let mut subscription = bus.subscribe(1000);
        let threads: Vec<_> = (0..4)
            .map(|thread| {
                let bus = bus.clone();
                std::thread::spawn(move || {
                    for index in 0..100 {
                        bus.publish(warning(thread * 1000 + index));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let received = runtime.block_on(async {
            let mut received = Vec::new();
            for _ in 0..400 {
                let Some(Event::CreditWarning(warning)) = subscription.recv().await else { panic!() };
                received.push(warning.customer.0);
            }
            received
        });
        // Each thread's events arrive in the order it published them.
        for thread in 0..4 {
            let mine: Vec<u64> = received.iter().copied().filter(|uin| uin / 1000 == thread).collect();
            assert_eq!(mine, (0..100).map(|index| thread * 1000 + index).collect::<Vec<_>>());
        }
        assert_eq!(bus.published(), 400);
    }

    #[test]
    #[should_panic(expected = "capacity is 1 to 1000000")]
    fn a_queue_holds_at_least_one_event() {
        EventBus::new().subscribe(0);
    }
}
