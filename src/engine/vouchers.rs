//! Vouchers on the engine's side: each operation authorizes, checks its input, then sends
//! commands to the accounts it concerns. The rules live in the domain
//! ([`crate::domain::voucher`], and the voucher commands of [`crate::domain::account`]).
//!
//! An index lets an operation that names only a voucher find the account that owns it:
//! `VoucherId -> owner`. It holds no state of its own: the owner's actor does.
//!
//! Invariant: a voucher is indexed before it is added to its owner's book and unindexed if
//! the book refuses it, so a voucher is findable as soon as it exists.

use std::sync::atomic::Ordering;

use dashmap::DashMap;
use futures::future::join_all;

use super::intents::{Intent, Steps};
use super::{check_page, invalid, page_of, Engine, EngineResult, Error};
use crate::domain::access;
use crate::domain::account::{
    AddVoucher, ApproveAssociated, ApproveVoucher, Children, Details, DrawVoucherQuota, GrantVoucherQuota,
    InvalidateAssociated, InvalidateVoucher, ReturnVoucherQuota, SetTrialFirst, UsageOf, VoucherIssuer,
    WithdrawVoucher,
};
use crate::domain::voucher::{
    PaymentMode, ProductScope, Scope, Usage, UsageRecord, Voucher, VoucherKind, VoucherStatus,
};
use crate::domain::{
    AccountDetails, AccountKind, AccountView, Action, Caller, KindRequired, Money, Month, Rejection, Role,
    Timestamp, Uin, VoucherId, VoucherPool,
};

/// A customer voucher as IssueCustomerVoucher asks for it.
#[derive(Clone, Debug)]
pub struct NewCustomerVoucher {
    pub customer: Uin,
    pub amount: Money,
    pub scope: Scope,
    pub effective: Timestamp,
    pub expire: Timestamp,
}

/// ApplyPartnerVoucher's `Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartnerVoucherType {
    /// Type I: for any of the partner's customers.
    General,
    /// Type II: for one designated customer; its approval issues a customer voucher too.
    ProductTrial { customer: Uin },
}

/// A partner voucher as ApplyPartnerVoucher asks for it.
#[derive(Clone, Debug)]
pub struct NewPartnerVoucher {
    /// The partner; the caller itself when absent (the operator must name one).
    pub partner: Option<Uin>,
    pub kind: PartnerVoucherType,
    pub amount: Money,
    pub scope: Scope,
    pub expire: Timestamp,
}

/// QueryVoucherPool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoucherPoolView {
    pub partner: AccountView,
    pub pool: VoucherPool,
}

/// Filters of the voucher lists (DescribeCustomerVoucherList and
/// DescribeCustomerOwnVoucherList); `None` matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VoucherFilter {
    pub customer: Option<Uin>,
    pub status: Option<VoucherStatus>,
    pub payment: Option<PaymentMode>,
    pub usage: Option<Usage>,
    pub products: Option<ProductScope>,
    pub id: Option<VoucherId>,
}

/// One page of vouchers, and how many match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoucherPage {
    pub total: usize,
    pub vouchers: Vec<Voucher>,
}

/// The usage of one voucher, for one month or all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoucherUsage {
    pub voucher: Voucher,
    /// Records kept (the newest [`crate::domain::voucher::Voucher::USAGE_MAX`]) in all months.
    pub total_records: usize,
    /// Records of the month asked for (all when none was), and this page of them, newest
    /// first.
    pub month_records: usize,
    pub records: Vec<UsageRecord>,
}

/// QueryVoucherAmountByUin: one customer's voucher amounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoucherAmount {
    pub customer: Uin,
    /// The denominations of its vouchers that are not withdrawn.
    pub total: Money,
    /// What it can still deduct now.
    pub remaining: Money,
}

/// QueryVoucherListByUin's `Status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoucherListStatus {
    Unused,
    Used,
    Expired,
}

/// The page size limit of the voucher lists and usage details (documented 1 to 100).
pub const VOUCHER_PAGE_SIZE_MAX: usize = 100;
/// QueryVoucherAmountByUin and QueryVoucherListByUin take 1 to 20 UINs.
pub const VOUCHER_UIN_LIST_MAX: usize = 20;

impl Engine {
    fn next_voucher_id(&self) -> VoucherId {
        VoucherId(self.next_voucher.fetch_add(1, Ordering::Relaxed))
    }

    fn voucher_owner(&self, id: VoucherId) -> EngineResult<Uin> {
        owner_of(&self.vouchers, id)
    }

    /// Everything about an account's vouchers (without usage records), bills and frozen
    /// credit (no authorization: callers check).
    pub(crate) async fn details(&self, uin: Uin) -> EngineResult<AccountDetails> {
        self.details_with(uin, true, UsageOf::None).await
    }

    /// [`Engine::details`] with the vouchers or not, and the usage records `usage` asks for.
    pub(crate) async fn details_with(
        &self,
        uin: Uin,
        vouchers: bool,
        usage: UsageOf,
    ) -> EngineResult<AccountDetails> {
        Ok(*self.ask(uin, Details { now: self.clock.now(), vouchers, usage }).await?)
    }

    /// Vouchers (with their usage records), bills, frozen credit and warning thresholds of an
    /// account, for the account itself, its parent or the operator.
    pub async fn account_details(&self, caller: Caller, uin: Uin) -> EngineResult<AccountDetails> {
        self.account(caller, uin).await?;
        self.details_with(uin, true, UsageOf::All).await
    }

    /// GrantVoucherQuota: the operator adds `delta` (or, negative, takes it back from what is
    /// not issued) to a partner's pool for customer vouchers; answers the pool's total.
    pub async fn grant_voucher_quota(
        &self,
        caller: Caller,
        partner: Uin,
        delta: Money,
    ) -> EngineResult<Money> {
        self.admit(caller, Action::GrantVoucherQuota)?;
        access::operator_only(caller, "grant voucher quota")?;
        self.ask(partner, GrantVoucherQuota { delta }).await
    }

    /// IssueCustomerVoucher: the customer's reseller or second-level reseller (or the
    /// operator, on its behalf) issues a CustomerOffer voucher from the parent's pool.
    pub async fn issue_customer_voucher(
        &self,
        caller: Caller,
        voucher: NewCustomerVoucher,
    ) -> EngineResult<VoucherId> {
        self.admit(caller, Action::IssueCustomerVoucher)?;
        let now = self.clock.now();
        let customer = voucher.customer;
        let issuer = self.ask(customer, VoucherIssuer { caller }).await?;
        let id = self.next_voucher_id();
        // Checked before anything is drawn from the pool.
        let voucher = Voucher::customer_offer(
            id,
            customer,
            issuer,
            voucher.scope,
            voucher.amount,
            voucher.effective,
            voucher.expire,
            now,
        )?;
        self.durably(Intent::IssueVoucher { issuer, voucher: Box::new(voucher) }, ()).await?.voucher()
    }

    /// ApplyPartnerVoucher: a partner (or the operator for it) applies for a voucher that
    /// needs the operator's approval before it deducts anything. A ProductTrial voucher's
    /// customer voucher is created with it, pending too, so that approving and invalidating
    /// the pair commute (see [`crate::domain::voucher::Voucher::associated_trial`]).
    pub async fn apply_partner_voucher(
        &self,
        caller: Caller,
        voucher: NewPartnerVoucher,
    ) -> EngineResult<VoucherId> {
        self.admit(caller, Action::ApplyPartnerVoucher)?;
        let now = self.clock.now();
        let partner = access::own_or_named(caller, voucher.partner, "the partner a voucher is for")?;
        let view = self.snapshot(partner).await?;
        if !matches!(view.role, Role::Distributor { .. } | Role::Reseller { .. }) {
            return Err(wrong_kind(partner, KindRequired::ChargeablePartner));
        }
        if self.runtime.is_escrowed(partner) {
            return Err(Rejection::Unsupported(format!(
                "partner {partner}'s credit is split across shards (escrow_partners); partner vouchers \
                 are not offered for escrowed partners"
            ))
            .into());
        }
        let id = self.next_voucher_id();
        let kind = match voucher.kind {
            PartnerVoucherType::General => VoucherKind::PartnerGeneral,
            PartnerVoucherType::ProductTrial { customer } => {
                let view = self.snapshot(customer).await?;
                let Role::Customer { charged, .. } = view.role else {
                    return Err(wrong_kind(customer, KindRequired::Customer));
                };
                if charged != partner {
                    return Err(invalid(
                        "CustomerUin",
                        format!("customer {customer}'s purchases charge {charged}, not {partner}"),
                    ));
                }
                VoucherKind::PartnerTrial { customer, associated: Some(self.next_voucher_id()) }
            }
        };
        let voucher =
            Voucher::partner(id, partner, kind, voucher.scope, voucher.amount, voucher.expire, now)?;
        self.durably(Intent::ApplyPartnerVoucher { voucher: Box::new(voucher) }, ()).await?.voucher()
    }

    /// ApprovePartnerVoucher (operator): the voucher is valid from now; a ProductTrial
    /// voucher's customer voucher is approved with it, and its id answered too.
    pub async fn approve_partner_voucher(
        &self,
        caller: Caller,
        id: VoucherId,
    ) -> EngineResult<(VoucherId, Option<VoucherId>)> {
        self.admit(caller, Action::ApprovePartnerVoucher)?;
        access::operator_only(caller, "approve partner vouchers")?;
        let owner = self.voucher_owner(id)?;
        let now = self.clock.now();
        self.durably(Intent::ApproveVoucher { owner, id, now }, ()).await?.approved()
    }

    /// WithdrawCustomerVoucher: a CustomerOffer voucher stops deducting; what it deducted
    /// stays.
    pub async fn withdraw_customer_voucher(&self, caller: Caller, id: VoucherId) -> EngineResult<()> {
        self.admit(caller, Action::WithdrawCustomerVoucher)?;
        let owner = self.voucher_owner(id)?;
        let command = WithdrawVoucher { caller, id, now: self.clock.now() };
        self.ask(owner, command).await.map_err(|error| hide_owner(error, Rejection::UnknownVoucher(id)))
    }

    /// InvalidatePartnerVoucher: by its partner or the operator, pending or approved; its
    /// associated customer voucher is withdrawn too.
    pub async fn invalidate_partner_voucher(&self, caller: Caller, id: VoucherId) -> EngineResult<()> {
        self.admit(caller, Action::InvalidatePartnerVoucher)?;
        let owner = self.voucher_owner(id)?;
        self.durably(Intent::InvalidateVoucher { caller, owner, id }, ()).await?.nothing()
    }

    /// SetTrialVoucherPriority: a distributor's or reseller's switch (on by default) that
    /// makes ProductTrial vouchers deduct first, on its side and on its customers'.
    pub async fn set_trial_voucher_priority(
        &self,
        caller: Caller,
        partner: Option<Uin>,
        enabled: bool,
    ) -> EngineResult<()> {
        self.admit(caller, Action::SetTrialVoucherPriority)?;
        let partner = access::own_or_named(caller, partner, "the partner whose switch it sets")?;
        let view = self.snapshot(partner).await?;
        let distributor = match view.role {
            Role::Distributor { .. } => true,
            Role::Reseller { .. } => false,
            _ => return Err(wrong_kind(partner, KindRequired::ChargeablePartner)),
        };
        // One switch at a time, and no customer created meanwhile: a customer reads its
        // partner's switch when it is created.
        let switching = self.switching.clone().write_owned().await;
        self.durably(Intent::SetTrialFirst { partner, distributor, enabled }, switching).await?.nothing()
    }

    /// QueryVoucherPool: the calling partner's pool for customer vouchers.
    pub async fn query_voucher_pool(&self, caller: Caller, partner: Uin) -> EngineResult<VoucherPoolView> {
        self.admit(caller, Action::QueryVoucherPool)?;
        let view = self.snapshot(partner).await?;
        if view.kind() == AccountKind::Customer {
            return Err(wrong_kind(partner, KindRequired::Partner));
        }
        access::itself(caller, partner)?;
        let pool = self.details_with(partner, false, UsageOf::None).await?.voucher_pool;
        Ok(VoucherPoolView { partner: view, pool })
    }

    /// The customers whose vouchers `caller` may list: its own customers (a distributor's
    /// through its second-level resellers), or one named customer.
    async fn voucher_customers(&self, caller: Caller, customer: Option<Uin>) -> EngineResult<Vec<Uin>> {
        if let Some(customer) = customer {
            let view = self.snapshot(customer).await?;
            if view.kind() != AccountKind::Customer {
                return Err(wrong_kind(customer, KindRequired::Customer));
            }
            its_partners(caller, &view)?;
            return Ok(vec![customer]);
        }
        let Caller::Uin(partner) = caller else {
            return Err(invalid(
                "CustomerUin",
                "the operator names the customer whose vouchers it lists".into(),
            ));
        };
        let distributor = self.snapshot(partner).await?.kind() == AccountKind::Distributor;
        charged_customers(&Steps::plain(self), partner, distributor).await
    }

    /// DescribeCustomerVoucherList: the customer vouchers of a partner's customers.
    pub async fn describe_customer_voucher_list(
        &self,
        caller: Caller,
        filter: &VoucherFilter,
        page: usize,
        page_size: usize,
    ) -> EngineResult<VoucherPage> {
        self.admit(caller, Action::DescribeCustomerVoucherList)?;
        check_page(page, page_size, VOUCHER_PAGE_SIZE_MAX)?;
        let customers = self.voucher_customers(caller, filter.customer).await?;
        self.voucher_page(&customers, filter, page, page_size).await
    }

    /// DescribeCustomerOwnVoucherList: the calling customer's vouchers.
    pub async fn describe_customer_own_voucher_list(
        &self,
        caller: Caller,
        customer: Uin,
        filter: &VoucherFilter,
        page: usize,
        page_size: usize,
    ) -> EngineResult<VoucherPage> {
        self.admit(caller, Action::DescribeCustomerOwnVoucherList)?;
        check_page(page, page_size, VOUCHER_PAGE_SIZE_MAX)?;
        let view = self.account(caller, customer).await?;
        if view.kind() != AccountKind::Customer {
            return Err(wrong_kind(customer, KindRequired::Customer));
        }
        self.voucher_page(&[customer], filter, page, page_size).await
    }

    async fn voucher_page(
        &self,
        customers: &[Uin],
        filter: &VoucherFilter,
        page: usize,
        page_size: usize,
    ) -> EngineResult<VoucherPage> {
        let now = self.clock.now();
        let mut vouchers = Vec::new();
        for result in join_all(customers.iter().map(|uin| self.details(*uin))).await {
            match result {
                Ok(details) => vouchers.extend(details.vouchers.into_iter().filter(|voucher| {
                    issued(voucher)
                        && filter.status.map_or(true, |status| voucher.status(now) == status)
                        && filter.payment.map_or(true, |payment| voucher.scope.payment == payment)
                        && filter.products.map_or(true, |products| voucher.scope.products == products)
                        && filter.id.map_or(true, |id| voucher.id == id)
                        && filter.usage.map_or(true, |usage| voucher.kind.usage() == Some(usage))
                })),
                Err(Error::Rejected(Rejection::UnknownUin(_))) => {}
                Err(error) => return Err(error),
            }
        }
        // Newest first.
        vouchers.sort_by_key(|voucher| std::cmp::Reverse(voucher.id));
        let total = vouchers.len();
        Ok(VoucherPage { total, vouchers: page_of(vouchers, page, page_size) })
    }

    /// DescribeCustomerVoucherUsageDetails (by the customer's partner) and
    /// DescribeCustomerOwnVoucherUsageDetails (by the customer): the deductions of one
    /// voucher, newest first, in `month` (UTC) or all.
    #[allow(clippy::too_many_arguments)]
    pub async fn voucher_usage(
        &self,
        caller: Caller,
        action: Action,
        customer: Uin,
        id: VoucherId,
        month: Option<Month>,
        page: usize,
        page_size: usize,
    ) -> EngineResult<VoucherUsage> {
        self.admit(caller, action)?;
        check_page(page, page_size, VOUCHER_PAGE_SIZE_MAX)?;
        let view = self.snapshot(customer).await?;
        if view.kind() != AccountKind::Customer {
            return Err(wrong_kind(customer, KindRequired::Customer));
        }
        if action == Action::DescribeCustomerOwnVoucherUsageDetails {
            access::itself(caller, customer)?;
        } else {
            its_partners(caller, &view)?;
        }
        let details = self.details_with(customer, true, UsageOf::One(id)).await?;
        let Some(voucher) = details.vouchers.into_iter().find(|voucher| voucher.id == id) else {
            return Err(Rejection::UnknownVoucher(id).into());
        };
        let total_records = voucher.usage().len();
        let mut records: Vec<UsageRecord> = voucher
            .usage()
            .iter()
            .rev()
            .filter(|record| month.map_or(true, |month| Month::of(record.time) == month))
            .cloned()
            .collect();
        let month_records = records.len();
        records = page_of(records, page, page_size);
        Ok(VoucherUsage { voucher, total_records, month_records, records })
    }

    /// QueryVoucherAmountByUin: for 1 to 20 of the caller's customers, the denominations of
    /// their vouchers and what is left to deduct.
    pub async fn query_voucher_amount_by_uin(
        &self,
        caller: Caller,
        uins: &[Uin],
    ) -> EngineResult<Vec<VoucherAmount>> {
        self.admit(caller, Action::QueryVoucherAmountByUin)?;
        self.check_voucher_uins(caller, uins).await?;
        let mut amounts = Vec::with_capacity(uins.len());
        for (uin, details) in uins.iter().zip(self.details_of_all(uins).await?) {
            let total = details
                .vouchers
                .iter()
                .filter(|voucher| issued(voucher) && !voucher.invalidated)
                .map(|voucher| voucher.total)
                .sum();
            amounts.push(VoucherAmount { customer: *uin, total, remaining: details.vouchers_remaining });
        }
        Ok(amounts)
    }

    /// QueryVoucherListByUin: for 1 to 20 of the caller's customers, their vouchers, all or
    /// those unused (issued), used or expired.
    pub async fn query_voucher_list_by_uin(
        &self,
        caller: Caller,
        uins: &[Uin],
        status: Option<VoucherListStatus>,
    ) -> EngineResult<Vec<(Uin, Vec<Voucher>)>> {
        self.admit(caller, Action::QueryVoucherListByUin)?;
        self.check_voucher_uins(caller, uins).await?;
        let now = self.clock.now();
        let wanted = status.map(|status| match status {
            VoucherListStatus::Unused => VoucherStatus::Issued,
            VoucherListStatus::Used => VoucherStatus::Used,
            VoucherListStatus::Expired => VoucherStatus::Expired,
        });
        let mut lists = Vec::with_capacity(uins.len());
        for (uin, details) in uins.iter().zip(self.details_of_all(uins).await?) {
            let vouchers = details.vouchers.into_iter().filter(|voucher| {
                issued(voucher) && wanted.map_or(true, |wanted| voucher.status(now) == wanted)
            });
            lists.push((*uin, vouchers.collect()));
        }
        Ok(lists)
    }

    /// The details of every account of `uins`, asked of their actors at once.
    async fn details_of_all(&self, uins: &[Uin]) -> EngineResult<Vec<AccountDetails>> {
        join_all(uins.iter().map(|uin| self.details(*uin))).await.into_iter().collect()
    }

    async fn check_voucher_uins(&self, caller: Caller, uins: &[Uin]) -> EngineResult<()> {
        if uins.is_empty() || uins.len() > VOUCHER_UIN_LIST_MAX {
            return Err(invalid(
                "ClientUins",
                format!("holds 1 to {VOUCHER_UIN_LIST_MAX} UINs, got {}", uins.len()),
            ));
        }
        for view in self.snapshots(uins).await? {
            if view.kind() != AccountKind::Customer {
                return Err(wrong_kind(view.uin, KindRequired::Customer));
            }
            its_partners(caller, &view)?;
        }
        Ok(())
    }
}

/// The customers a partner is charged for: a distributor's through its second-level
/// resellers, anyone else's directly (as the children they list).
async fn charged_customers(steps: &Steps, partner: Uin, distributor: bool) -> EngineResult<Vec<Uin>> {
    let direct = steps.ask(partner, Children).await?;
    if !distributor {
        return Ok(direct);
    }
    let mut customers = Vec::new();
    for sub_agent in direct {
        customers.extend(steps.ask(sub_agent, Children).await?);
    }
    Ok(customers)
}

/// A customer's partners: its parent, the partner its purchases charge, or the operator.
fn its_partners(caller: Caller, view: &AccountView) -> Result<(), Rejection> {
    access::permit(caller, view.uin, [view.parent(), view.role.charged()])
}

/// A caller who may not act on a voucher or a resource named only by its id is told it does
/// not exist: ids are global and sequential, and the refusal would name their owner.
pub(super) fn hide_owner(error: Error, unknown: Rejection) -> Error {
    match error {
        Error::Rejected(Rejection::NotAuthorized { .. }) => unknown.into(),
        other => other,
    }
}

/// Whether a customer sees the voucher: not the customer voucher of a ProductTrial partner
/// voucher that was never approved (it exists, pending, only so that approval and
/// invalidation commute).
fn issued(voucher: &Voucher) -> bool {
    voucher.approved || !matches!(voucher.kind, VoucherKind::CustomerTrial { .. })
}

/// Indexes a new voucher under its owner and adds it to the owner's book; a refusal takes the
/// index entry back. Indexed first, so that the voucher is findable as soon as it exists.
async fn add_voucher(steps: &Steps, voucher: Voucher) -> EngineResult<()> {
    let (id, owner) = (voucher.id, voucher.owner);
    steps.vouchers().insert(id, owner);
    if let Err(error) = steps.ask(owner, AddVoucher { voucher: Box::new(voucher) }).await {
        steps.vouchers().remove(&id);
        return Err(error);
    }
    Ok(())
}

/// The steps of IssueCustomerVoucher: drawn from the issuer's pool, then added to the
/// customer's book (or given back if the book refuses it).
pub(super) async fn issue_steps(steps: &Steps, issuer: Uin, voucher: Voucher) -> EngineResult<VoucherId> {
    let (id, quota) = (voucher.id, voucher.total);
    steps.ask(issuer, DrawVoucherQuota { quota }).await?;
    if let Err(error) = add_voucher(steps, voucher).await {
        steps.ask(issuer, ReturnVoucherQuota { quota }).await?;
        return Err(error);
    }
    Ok(id)
}

/// The steps of ApplyPartnerVoucher: the customer's pending voucher first (for a
/// ProductTrial voucher): if the partner's book refuses, it is invalidated, and an
/// invalidated voucher is never approved.
pub(super) async fn apply_partner_steps(steps: &Steps, voucher: Voucher) -> EngineResult<VoucherId> {
    let id = voucher.id;
    let associated = voucher.associated_trial();
    if let Some(associated) = associated.clone() {
        add_voucher(steps, associated).await?;
    }
    if let Err(error) = add_voucher(steps, voucher).await {
        if let Some(associated) = associated {
            steps.ask(associated.owner, InvalidateAssociated { id: associated.id }).await?;
        }
        return Err(error);
    }
    Ok(id)
}

/// The steps of ApprovePartnerVoucher: the partner's voucher, then its customer voucher.
pub(super) async fn approve_steps(
    steps: &Steps,
    owner: Uin,
    id: VoucherId,
    now: Timestamp,
) -> EngineResult<(VoucherId, Option<VoucherId>)> {
    let Some(associated) = steps.ask(owner, ApproveVoucher { id, now }).await? else {
        return Ok((id, None));
    };
    let customer = owner_of(steps.vouchers(), associated)?;
    // Refused only if the pair was invalidated meanwhile: then both are.
    steps.ask(customer, ApproveAssociated { id: associated, now }).await?;
    Ok((id, Some(associated)))
}

/// The steps of InvalidatePartnerVoucher: the partner's voucher, then its customer voucher.
pub(super) async fn invalidate_steps(
    steps: &Steps,
    caller: Caller,
    owner: Uin,
    id: VoucherId,
) -> EngineResult<()> {
    let invalidated = steps.ask(owner, InvalidateVoucher { caller, id }).await;
    let associated = invalidated.map_err(|error| hide_owner(error, Rejection::UnknownVoucher(id)))?;
    if let Some(associated) = associated {
        if let Ok(customer) = owner_of(steps.vouchers(), associated) {
            steps.ask(customer, InvalidateAssociated { id: associated }).await?;
        }
    }
    Ok(())
}

/// The steps of SetTrialVoucherPriority: the partner's switch, then the copy each customer
/// it is charged for keeps, so that a purchase needs no lookup (a reseller's children, or
/// the children of a distributor's second-level resellers).
pub(super) async fn trial_first_steps(
    steps: &Steps,
    partner: Uin,
    distributor: bool,
    enabled: bool,
) -> EngineResult<()> {
    steps.ask(partner, SetTrialFirst { enabled }).await?;
    let customers = charged_customers(steps, partner, distributor).await?;
    for result in join_all(customers.iter().map(|uin| steps.ask(*uin, SetTrialFirst { enabled }))).await {
        match result {
            Ok(_) | Err(Error::Rejected(Rejection::UnknownUin(_))) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// The owner of voucher `id`, from the engine's voucher index.
fn owner_of(index: &DashMap<VoucherId, Uin>, id: VoucherId) -> EngineResult<Uin> {
    index.get(&id).map(|owner| *owner).ok_or_else(|| Rejection::UnknownVoucher(id).into())
}

fn wrong_kind(uin: Uin, required: KindRequired) -> Error {
    Rejection::WrongKind { uin, required }.into()
}
