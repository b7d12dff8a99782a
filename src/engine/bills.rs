//! Bills on the engine's side: ConfirmBill (a customer's bill, by its partner) and
//! SettlePartnerBill (a partner's, by the operator). The rules are the domain's
//! ([`crate::domain::bill`], [`crate::domain::account::ConfirmBill`]).

use super::{Engine, EngineResult};
use crate::domain::access;
use crate::domain::account::ConfirmBill;
use crate::domain::bill;
use crate::domain::{Action, Caller, KindRequired, Money, Month, Timestamp, Uin};

impl Engine {
    /// When the bill of `month` becomes final (see [`bill`]).
    pub fn bill_final_from(&self, month: Month) -> Timestamp {
        bill::final_from(month, self.config.reservation_timeout_ms_max)
    }

    /// ConfirmBill: the customer's partner (or the operator) confirms its bill of `month`;
    /// what it was charged in that month returns to its available credit. Answers the credit
    /// returned.
    pub async fn confirm_bill(&self, caller: Caller, customer: Uin, month: Month) -> EngineResult<Money> {
        self.admit(caller, Action::ConfirmBill)?;
        self.confirm(caller, customer, KindRequired::Customer, month).await
    }

    /// SettlePartnerBill (operator): the same for what a distributor or reseller was charged.
    pub async fn settle_partner_bill(
        &self,
        caller: Caller,
        partner: Uin,
        month: Month,
    ) -> EngineResult<Money> {
        self.admit(caller, Action::SettlePartnerBill)?;
        access::operator_only(caller, "settle a partner's bill")?;
        self.confirm(caller, partner, KindRequired::ChargeablePartner, month).await
    }

    async fn confirm(
        &self,
        caller: Caller,
        uin: Uin,
        kind: KindRequired,
        month: Month,
    ) -> EngineResult<Money> {
        let final_from = self.bill_final_from(month);
        self.ask(uin, ConfirmBill { caller, kind, month, now: self.clock.now(), final_from }).await
    }
}
