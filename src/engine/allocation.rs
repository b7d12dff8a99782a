//! Allocation: a partner gives credit to (or takes it back from) a customer, a distributor to
//! (or from) a second-level reseller's pool, and the history of both.
//!
//! Invariant: an allocation runs its steps (receiver, giver, receiver) on its own task to the
//! end, ordered so that only the first two can refuse and nothing needs undoing (see
//! [`crate::domain::account::OpenAllocation`]).

use super::intents::{Intent, Steps};
use super::setup::check_remark;
use super::{check_page, Engine, EngineResult};
use crate::domain::account::{
    require_change, CloseAllocation, History, OpenAllocation, ReturnAllocable, TakeAllocable, ZERO_ALLOCATION,
};
use crate::domain::{
    access, Action, AllocationRecord, Caller, CreditLine, KindRequired, Money, RecordInfo, Uin,
};
use crate::engine::PAGE_SIZE_MAX;

impl Engine {
    /// AllocateCustomerCredit: `delta` is an increment; negative repossesses. The caller is
    /// the customer's reseller or second-level reseller, or the operator.
    pub async fn allocate_customer_credit(
        &self,
        caller: Caller,
        customer: Uin,
        delta: Money,
        remark: Option<String>,
    ) -> EngineResult<CreditLine> {
        self.admit(caller, Action::AllocateCustomerCredit)?;
        self.allocate(caller, customer, KindRequired::Customer, delta, remark).await
    }

    /// AllocateCreditPool: a distributor allocates to (or repossesses from) the pool of one of
    /// its second-level resellers. Answers the pool's total and what is left of it.
    pub async fn allocate_credit_pool(
        &self,
        caller: Caller,
        sub_agent: Uin,
        delta: Money,
    ) -> EngineResult<CreditLine> {
        self.admit(caller, Action::AllocateCreditPool)?;
        self.allocate(caller, sub_agent, KindRequired::SecondLevelReseller, delta, None).await
    }

    /// The receiver refuses first (authorization, repossession bounds); then the giver
    /// (allocable bounds); the last step cannot be refused. So a refusal at any step leaves
    /// nothing changed, and no step needs undoing.
    async fn allocate(
        &self,
        caller: Caller,
        receiver: Uin,
        kind: KindRequired,
        delta: Money,
        remark: Option<String>,
    ) -> EngineResult<CreditLine> {
        require_change(delta, ZERO_ALLOCATION)?;
        if let Some(remark) = &remark {
            check_remark(remark)?;
        }
        let record = self.record_info(caller, remark);
        // Run to the end even if the caller stops waiting, or the process stops: a half-done
        // allocation would have taken credit from one side without giving it to the other.
        self.durably(Intent::Allocate { caller, receiver, kind, delta, record }, ()).await?.credit_line()
    }

    /// QueryCreditAllocationHistory: the credit moves a customer (or a second-level
    /// reseller's pool) received, newest first, for its parent or the operator.
    pub async fn query_credit_allocation_history(
        &self,
        caller: Caller,
        receiver: Uin,
        page: usize,
        page_size: usize,
    ) -> EngineResult<(usize, Vec<AllocationRecord>)> {
        self.admit(caller, Action::QueryCreditAllocationHistory)?;
        check_page(page, page_size, PAGE_SIZE_MAX)?;
        let view = self.snapshot(receiver).await?;
        access::its_parent(caller, view.uin, view.parent())?;
        let history = self.ask(receiver, History { page, page_size }).await?;
        Ok((history.total, history.records))
    }
}

/// The steps of an allocation: the receiver, then the giver, then the receiver again.
pub(super) async fn allocate_steps(
    steps: &Steps,
    caller: Caller,
    receiver: Uin,
    kind: KindRequired,
    delta: Money,
    record: Box<RecordInfo>,
) -> EngineResult<CreditLine> {
    let open = OpenAllocation { caller, receiver: kind, delta, record: record.clone() };
    let opened = steps.ask(receiver, open).await?;
    if let Some(applied) = opened.applied {
        steps.ask(opened.giver, ReturnAllocable { credit: delta.abs() }).await?;
        return Ok(applied);
    }
    steps.ask(opened.giver, TakeAllocable { credit: delta }).await?;
    steps.ask(receiver, CloseAllocation { delta, record }).await
}
