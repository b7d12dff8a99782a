//! Credit warnings on the engine's side: thresholds set by partners and customers, and the
//! event bus the runtime publishes crossings on (see [`crate::domain::warning`] for the
//! arithmetic, [`crate::events`] for the bus).

use std::sync::Arc;

use super::{Engine, EngineResult};
use crate::domain::account::SetWarningThreshold;
use crate::domain::warning::Threshold;
use crate::domain::{Action, Caller, Uin};
use crate::events::{EventBus, Subscription};

impl Engine {
    /// The bus that carries credit warnings; subscribe to it to receive them.
    pub fn events(&self) -> &Arc<EventBus> {
        &self.events
    }

    /// A subscription to the engine's events with a queue of `capacity`.
    pub fn subscribe(&self, capacity: usize) -> Subscription {
        self.events.subscribe(capacity)
    }

    /// SetCreditWarning: the customer's partner sets its threshold for the customer (events
    /// to the partner), or the customer its own (events to itself); `None` removes it.
    pub async fn set_credit_warning(
        &self,
        caller: Caller,
        customer: Uin,
        threshold: Option<Threshold>,
    ) -> EngineResult<()> {
        self.admit(caller, Action::SetCreditWarning)?;
        self.ask(customer, SetWarningThreshold { caller, threshold }).await
    }
}
