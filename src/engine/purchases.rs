//! The purchase protocol: one-shot purchases, reservations and their commit or cancel, and
//! batches. The engine checks what the request alone decides (the amount, the timeout, the
//! batch's size); the runtime's coordinators run the rest (see [`crate::coordinator`]).

use super::{check_batch_len, check_purchase_amount, check_reservation_timeout_ms, Engine, EngineResult};
use crate::coordinator::{Mode, Outcome, PurchaseReceipt, PurchaseRequest, ReservationReceipt};
use crate::domain::{Action, Caller, PurchaseId, Rejection};
use crate::runtime::{CoordinatorOp, Failure};

impl Engine {
    /// A one-shot purchase: reserve and commit on the customer and its charged partner.
    pub async fn purchase(&self, caller: Caller, request: PurchaseRequest) -> EngineResult<PurchaseReceipt> {
        self.admit(caller, Action::CreatePurchase)?;
        check_purchase_amount(request.amount)?;
        match self.coordinate(CoordinatorOp::Begin { caller, request, mode: Mode::OneShot }).await? {
            Outcome::Purchased(receipt) => Ok(receipt),
            other => unexpected(other),
        }
    }

    /// Phase one: holds the amount on both sides until commit, cancel or the deadline.
    pub async fn reserve(
        &self,
        caller: Caller,
        request: PurchaseRequest,
        timeout_ms: Option<i64>,
    ) -> EngineResult<ReservationReceipt> {
        self.admit(caller, Action::ReservePurchase)?;
        check_purchase_amount(request.amount)?;
        let timeout_ms = timeout_ms.unwrap_or(self.config.reservation_timeout_ms_default);
        check_reservation_timeout_ms(timeout_ms, self.config.reservation_timeout_ms_max)?;
        let op = CoordinatorOp::Begin { caller, request, mode: Mode::Reserve { timeout_ms } };
        match self.coordinate(op).await? {
            Outcome::Reserved(receipt) => Ok(receipt),
            other => unexpected(other),
        }
    }

    /// Phase two: the reservation's amounts become used on both sides.
    pub async fn commit(&self, caller: Caller, id: PurchaseId) -> EngineResult<()> {
        self.admit(caller, Action::CommitPurchase)?;
        self.coordinate(CoordinatorOp::Commit { caller, id }).await.map(drop)
    }

    /// Releases a reservation on both sides.
    pub async fn cancel(&self, caller: Caller, id: PurchaseId) -> EngineResult<()> {
        self.admit(caller, Action::CancelPurchase)?;
        self.coordinate(CoordinatorOp::Cancel { caller, id }).await.map(drop)
    }

    async fn coordinate(&self, op: CoordinatorOp) -> EngineResult<Outcome> {
        Ok(self.runtime.coordinate(op).await??)
    }

    /// Many one-shot purchases at once, answered in order. A refusal of one does not stop the
    /// others. They run concurrently, like that many single calls made at once: two
    /// purchases of one customer (or charging one partner) that cannot both pass may be
    /// applied in either order.
    pub async fn purchase_batch(
        &self,
        caller: Caller,
        requests: Vec<PurchaseRequest>,
    ) -> EngineResult<Vec<Result<PurchaseReceipt, Rejection>>> {
        self.admit(caller, Action::CreatePurchases)?;
        check_batch_len(requests.len(), self.config.batch_len_max)?;
        if requests.iter().all(|request| check_purchase_amount(request.amount).is_ok()) {
            return Ok(self.runtime.purchase_batch(caller, requests).await?);
        }
        // Invalid amounts are refused one by one, like the runtime's refusals.
        let mut answers: Vec<Option<Result<PurchaseReceipt, Rejection>>> = Vec::with_capacity(requests.len());
        let mut valid = Vec::with_capacity(requests.len());
        for request in requests {
            match check_purchase_amount(request.amount) {
                Ok(()) => {
                    answers.push(None);
                    valid.push(request);
                }
                Err(rejection) => answers.push(Some(Err(rejection))),
            }
        }
        let mut results = self.runtime.purchase_batch(caller, valid).await?.into_iter();
        Ok(answers
            .into_iter()
            .map(|answer| answer.unwrap_or_else(|| results.next().expect("one result per valid request")))
            .collect())
    }

    /// Releases every reservation past its deadline now, instead of at the next sweep.
    /// Answers how many were released.
    pub async fn expire_due(&self) -> EngineResult<usize> {
        Ok(self.runtime.expire_due().await?)
    }

    pub async fn open_reservations(&self) -> EngineResult<usize> {
        Ok(self.runtime.open_reservations().await?)
    }
}

fn unexpected<T>(outcome: Outcome) -> EngineResult<T> {
    Err(Failure::Internal(format!("unexpected outcome {outcome:?}")).into())
}
