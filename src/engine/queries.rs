//! Queries: one account, a partner's credit and customers, a distributor's second-level
//! resellers, lists of UINs, and every account for audits. Each reads snapshots of the
//! accounts it concerns and decides authorization on them (see [`crate::domain::access`]).

use futures::future::join_all;

use super::{check_page, invalid, page_of, Engine, EngineResult, Error};
use crate::audit::Audit;
use crate::domain::account::{Children, Snapshot, UsageOf};
use crate::domain::{
    access, AccountKind, AccountView, Action, Caller, KindRequired, Money, Rejection, Role, Uin,
};

/// QueryPartnerCredit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartnerCreditSummary {
    pub total: Money,
    pub allocated: Money,
    pub remaining: Money,
    pub customer_total: Money,
    pub customer_remaining: Money,
}

/// QueryCustomerBillingQuota.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BillingQuota {
    pub total: Money,
    pub remaining: Money,
    pub postpay_frozen: Money,
    /// What its vouchers can still deduct.
    pub remaining_voucher: Money,
    /// 0 normal, 2 forced suspension.
    pub force: u8,
}

/// One row of QueryCreditByUinList and QueryDirectCustomersCredit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UinCredit {
    pub uin: Uin,
    pub total: Money,
    pub remaining: Money,
}

/// Which field QueryCustomersCredit filters on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CustomerFilterField {
    ClientUin,
    Name,
    Remark,
    Email,
}

/// QueryCustomersCredit's filter, page and order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerQuery {
    pub filter: Option<(CustomerFilterField, String)>,
    /// From 1.
    pub page: usize,
    pub page_size: usize,
    /// By association time; descending unless set.
    pub ascending: bool,
}

impl Default for CustomerQuery {
    fn default() -> CustomerQuery {
        CustomerQuery { filter: None, page: 1, page_size: 20, ascending: false }
    }
}

/// The largest page any query returns.
pub const PAGE_SIZE_MAX: usize = 1000;
/// QueryCreditByUinList takes 1 to 50 UINs.
pub const UIN_LIST_MAX: usize = 50;
/// DescribeCustomerInfo takes 1 to 20 UINs.
pub const CUSTOMER_INFO_MAX: usize = 20;
/// The largest page of QuerySubAgentsDetailV2 and QueryT1IndirectCustomersDetail (documented).
pub const SUB_AGENT_PAGE_SIZE_MAX: usize = 100;

/// Which field QuerySubAgentsDetailV2 filters on. `SubAgentUin`, `Email` and `ClientUin`
/// match exactly, the others as a substring, as the upstream reference says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubAgentFilterField {
    Name,
    SubAgentUin,
    Remark,
    /// The engine holds no mobile numbers: this filter matches nothing.
    Mobile,
    Email,
    /// The second-level reseller that has this customer.
    ClientUin,
}

/// QuerySubAgentsDetailV2's filter, page and order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubAgentQuery {
    pub filter: Option<(SubAgentFilterField, String)>,
    /// From 1.
    pub page: usize,
    /// 1 to [`SUB_AGENT_PAGE_SIZE_MAX`].
    pub page_size: usize,
    /// By binding time; descending unless set.
    pub ascending: bool,
}

/// QueryT1IndirectCustomersDetail: a second-level reseller and one page of its customers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndirectCustomers {
    pub sub_agent: AccountView,
    /// How many customers the second-level reseller has.
    pub total: usize,
    /// Newest binding first.
    pub customers: Vec<AccountView>,
}

impl Engine {
    /// One account's state, for the account itself, its parent, or the operator.
    pub async fn account(&self, caller: Caller, uin: Uin) -> EngineResult<AccountView> {
        let view = self.snapshot(uin).await?;
        access::itself_or_parent(caller, view.uin, view.parent())?;
        Ok(view)
    }

    pub(super) async fn snapshot(&self, uin: Uin) -> EngineResult<AccountView> {
        Ok(*self.ask(uin, Snapshot).await?)
    }

    /// The children of a partner. A child listed but not yet created (its creation is in
    /// progress) is left out, and so is anything whose parent is not this partner.
    pub(super) async fn children_views(&self, partner: Uin) -> EngineResult<Vec<AccountView>> {
        let children = self.ask(partner, Children).await?;
        let mut views = Vec::with_capacity(children.len());
        for result in join_all(children.iter().map(|uin| self.snapshot(*uin))).await {
            match result {
                Ok(view) if view.parent() == Some(partner) => views.push(view),
                Ok(_) | Err(Error::Rejected(Rejection::UnknownUin(_))) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(views)
    }

    pub(super) async fn snapshots(&self, uins: &[Uin]) -> EngineResult<Vec<AccountView>> {
        join_all(uins.iter().map(|uin| self.snapshot(*uin))).await.into_iter().collect()
    }

    /// QueryPartnerCredit, for the partner itself or the operator.
    pub async fn query_partner_credit(
        &self,
        caller: Caller,
        partner: Uin,
    ) -> EngineResult<PartnerCreditSummary> {
        self.admit(caller, Action::QueryPartnerCredit)?;
        let view = self.snapshot(partner).await?;
        let (total, allocated, remaining) = match &view.role {
            Role::Distributor { credit } | Role::Reseller { credit } => {
                (credit.total, credit.allocated, credit.available())
            }
            Role::SecondLevelReseller { pool, .. } => (pool.total, pool.allocated, pool.remaining()),
            Role::Customer { .. } => return Err(wrong_kind(partner, KindRequired::Partner)),
        };
        access::itself(caller, partner)?;
        let customers = self.children_views(partner).await?;
        let customers = customers.iter().filter(|view| view.kind() == AccountKind::Customer);
        let (customer_total, customer_remaining) = customers
            .fold((Money::ZERO, Money::ZERO), |(total, remaining), view| {
                (total + view.total(), remaining + view.available())
            });
        Ok(PartnerCreditSummary { total, allocated, remaining, customer_total, customer_remaining })
    }

    /// QueryCustomerBillingQuota, for the customer itself (or its parent, or the operator).
    pub async fn query_customer_billing_quota(
        &self,
        caller: Caller,
        customer: Uin,
    ) -> EngineResult<BillingQuota> {
        self.admit(caller, Action::QueryCustomerBillingQuota)?;
        let view = self.account(caller, customer).await?;
        let Role::Customer { credit, suspended, .. } = view.role else {
            return Err(wrong_kind(customer, KindRequired::Customer));
        };
        let remaining_voucher = self.details_with(customer, false, UsageOf::None).await?.vouchers_remaining;
        Ok(BillingQuota {
            total: credit.total,
            remaining: credit.available(),
            postpay_frozen: credit.frozen,
            remaining_voucher,
            force: if suspended { 2 } else { 0 },
        })
    }

    /// QueryCreditByUinList: 1 to 50 UINs, each one of the caller's customers or
    /// second-level resellers.
    pub async fn query_credit_by_uin_list(
        &self,
        caller: Caller,
        uins: &[Uin],
    ) -> EngineResult<Vec<UinCredit>> {
        self.admit(caller, Action::QueryCreditByUinList)?;
        if uins.is_empty() || uins.len() > UIN_LIST_MAX {
            return Err(invalid("UinList", format!("holds 1 to {UIN_LIST_MAX} UINs, got {}", uins.len())));
        }
        let views = self.snapshots(uins).await?;
        for view in &views {
            access::its_parent(caller, view.uin, view.parent())?;
        }
        Ok(views.iter().map(uin_credit).collect())
    }

    /// QueryDirectCustomersCredit: the credit of every direct customer of `partner`.
    pub async fn query_direct_customers_credit(
        &self,
        caller: Caller,
        partner: Uin,
    ) -> EngineResult<Vec<UinCredit>> {
        self.admit(caller, Action::QueryDirectCustomersCredit)?;
        let customers = self.direct_customers(caller, partner).await?;
        Ok(customers.iter().map(uin_credit).collect())
    }

    /// QueryCustomersCredit: the partner's customers, filtered, ordered by association time
    /// and paged. Answers the number of matches and one page.
    pub async fn query_customers_credit(
        &self,
        caller: Caller,
        partner: Uin,
        query: &CustomerQuery,
    ) -> EngineResult<(usize, Vec<AccountView>)> {
        self.admit(caller, Action::QueryCustomersCredit)?;
        check_page(query.page, query.page_size, PAGE_SIZE_MAX)?;
        let mut customers = self.direct_customers(caller, partner).await?;
        if let Some((field, needle)) = &query.filter {
            customers.retain(|view| customer_matches(view, *field, needle));
        }
        sort_by_association(&mut customers, query.ascending);
        let total = customers.len();
        Ok((total, page_of(customers, query.page, query.page_size)))
    }

    /// The direct customers of `partner` (a reseller's or a second-level reseller's), for
    /// the partner itself or the operator.
    async fn direct_customers(&self, caller: Caller, partner: Uin) -> EngineResult<Vec<AccountView>> {
        let view = self.snapshot(partner).await?;
        if view.kind() == AccountKind::Customer {
            return Err(wrong_kind(partner, KindRequired::Partner));
        }
        access::itself(caller, partner)?;
        let mut children = self.children_views(partner).await?;
        children.retain(|child| child.kind() == AccountKind::Customer);
        Ok(children)
    }

    /// DescribeCustomerUin: one page of the UINs of `partner`'s customers, newest binding
    /// first, and how many there are; for the partner itself or the operator.
    pub async fn describe_customer_uins(
        &self,
        caller: Caller,
        partner: Uin,
        page: usize,
        page_size: usize,
    ) -> EngineResult<(usize, Vec<Uin>)> {
        self.admit(caller, Action::DescribeCustomerUin)?;
        check_page(page, page_size, PAGE_SIZE_MAX)?;
        let mut customers = self.direct_customers(caller, partner).await?;
        sort_by_association(&mut customers, false);
        let total = customers.len();
        let page = page_of(customers, page, page_size);
        Ok((total, page.iter().map(|view| view.uin).collect()))
    }

    /// DescribeCustomerInfo: 1 to 20 customers, in the order asked, each one of the
    /// caller's customers (or any, for the operator).
    pub async fn describe_customer_info(
        &self,
        caller: Caller,
        customers: &[Uin],
    ) -> EngineResult<Vec<AccountView>> {
        self.admit(caller, Action::DescribeCustomerInfo)?;
        if customers.is_empty() || customers.len() > CUSTOMER_INFO_MAX {
            return Err(invalid(
                "CustomerUin",
                format!("holds 1 to {CUSTOMER_INFO_MAX} UINs, got {}", customers.len()),
            ));
        }
        let views = self.snapshots(customers).await?;
        for view in &views {
            if view.kind() != AccountKind::Customer {
                return Err(wrong_kind(view.uin, KindRequired::Customer));
            }
            access::its_parent(caller, view.uin, view.parent())?;
        }
        Ok(views)
    }

    /// QuerySubAgentsDetailV2: a distributor's second-level resellers, filtered, ordered by
    /// binding time and paged; for the distributor itself or the operator. Answers the
    /// number of matches and one page.
    pub async fn query_sub_agents_detail(
        &self,
        caller: Caller,
        distributor: Uin,
        query: &SubAgentQuery,
    ) -> EngineResult<(usize, Vec<AccountView>)> {
        self.admit(caller, Action::QuerySubAgentsDetailV2)?;
        check_page(query.page, query.page_size, SUB_AGENT_PAGE_SIZE_MAX)?;
        let view = self.snapshot(distributor).await?;
        if view.kind() != AccountKind::Distributor {
            return Err(wrong_kind(distributor, KindRequired::Distributor));
        }
        access::itself(caller, distributor)?;
        let mut sub_agents = self.children_views(distributor).await?;
        sub_agents.retain(|child| child.kind() == AccountKind::SecondLevelReseller);
        if let Some((field, needle)) = &query.filter {
            let parent_of_client = match field {
                SubAgentFilterField::ClientUin => self.parent_of_customer(needle).await?,
                _ => None,
            };
            sub_agents.retain(|view| sub_agent_matches(view, *field, needle, parent_of_client));
        }
        sort_by_association(&mut sub_agents, query.ascending);
        let total = sub_agents.len();
        Ok((total, page_of(sub_agents, query.page, query.page_size)))
    }

    /// The parent of the customer whose UIN is `text`, if there is one.
    async fn parent_of_customer(&self, text: &str) -> EngineResult<Option<Uin>> {
        let Ok(uin) = text.parse::<u64>() else {
            return Ok(None);
        };
        match self.snapshot(Uin(uin)).await {
            Ok(view) if view.kind() == AccountKind::Customer => Ok(view.parent()),
            Ok(_) | Err(Error::Rejected(Rejection::UnknownUin(_))) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// QueryT1IndirectCustomersDetail: one page of a second-level reseller's customers,
    /// newest binding first; for its distributor or the operator.
    pub async fn query_t1_indirect_customers(
        &self,
        caller: Caller,
        sub_agent: Uin,
        page: usize,
        page_size: usize,
    ) -> EngineResult<IndirectCustomers> {
        self.admit(caller, Action::QueryT1IndirectCustomersDetail)?;
        check_page(page, page_size, SUB_AGENT_PAGE_SIZE_MAX)?;
        let view = self.snapshot(sub_agent).await?;
        if view.kind() != AccountKind::SecondLevelReseller {
            return Err(wrong_kind(sub_agent, KindRequired::SecondLevelReseller));
        }
        access::its_parent(caller, view.uin, view.parent())?;
        let mut customers = self.children_views(sub_agent).await?;
        customers.retain(|child| child.kind() == AccountKind::Customer);
        sort_by_association(&mut customers, false);
        let total = customers.len();
        Ok(IndirectCustomers { sub_agent: view, total, customers: page_of(customers, page, page_size) })
    }

    /// Every account's state, for audits. Not paged: meant for tests, the load generator's
    /// audit and operators.
    pub async fn all_accounts(&self) -> EngineResult<Vec<AccountView>> {
        let mut uins = self.runtime.uins();
        uins.sort_unstable();
        let mut views = Vec::with_capacity(uins.len());
        // In chunks, so that a large world does not put every request in flight at once.
        for chunk in uins.chunks(4096) {
            views.extend(self.snapshots(chunk).await?);
        }
        Ok(views)
    }

    /// Reads every account and checks the books (see [`Audit`]). Meant for a quiescent
    /// engine: operations in flight show up as imbalances.
    pub async fn audit(&self) -> EngineResult<Audit> {
        Ok(Audit::of(&self.all_accounts().await?))
    }
}

fn customer_matches(view: &AccountView, field: CustomerFilterField, needle: &str) -> bool {
    let text = |value: &Option<Box<str>>| value.as_deref().is_some_and(|text| text.contains(needle));
    match field {
        CustomerFilterField::ClientUin => view.uin.to_string() == needle,
        CustomerFilterField::Name => text(&view.profile.name),
        CustomerFilterField::Remark => text(&view.profile.remark),
        CustomerFilterField::Email => text(&view.profile.email),
    }
}

fn sub_agent_matches(
    view: &AccountView,
    field: SubAgentFilterField,
    needle: &str,
    parent_of_client: Option<Uin>,
) -> bool {
    let contains = |value: &Option<Box<str>>| value.as_deref().is_some_and(|text| text.contains(needle));
    match field {
        SubAgentFilterField::Name => contains(&view.profile.name),
        SubAgentFilterField::SubAgentUin => view.uin.to_string() == needle,
        SubAgentFilterField::Remark => contains(&view.profile.remark),
        SubAgentFilterField::Mobile => false,
        SubAgentFilterField::Email => view.profile.email.as_deref() == Some(needle),
        SubAgentFilterField::ClientUin => parent_of_client == Some(view.uin),
    }
}

/// Orders by association (binding) time, then UIN, so that equal times page stably.
fn sort_by_association(views: &mut [AccountView], ascending: bool) {
    views.sort_by_key(|view| (view.created, view.uin));
    if !ascending {
        views.reverse();
    }
}

fn uin_credit(view: &AccountView) -> UinCredit {
    UinCredit { uin: view.uin, total: view.total(), remaining: view.available() }
}

fn wrong_kind(uin: Uin, required: KindRequired) -> Error {
    Rejection::WrongKind { uin, required }.into()
}
