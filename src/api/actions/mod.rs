//! The actions as one table: for every [`Action`], the function that reads its parameters and
//! the function that answers it, in one file per family of actions.
//!
//! A row's [`Action`] is both the API name (`X-TC-Action`, or `Action` in a v1 request) and
//! the quota the call counts against: the handler passes it to the engine, which counts it
//! first, and refusals take their codes in its context ([`Context::refused`]).
//!
//! Every offered action is answered in the same three steps, which [`table!`] writes once:
//! 1. the row's reader takes each parameter with its documented type and bounds (a missing,
//!    mistyped or out-of-bounds one is refused, naming it);
//! 2. [`Params::finish`]: whatever the reader did not take is an unknown parameter;
//! 3. the row's handler calls the engine and writes the documented fields.
//!
//! So a bad request is refused before anything is counted or changed, and an action has no
//! other parser than its reader: the same reader serves a JSON body, a form body and a query
//! string ([`super::decode`]).
//!
//! The families: [`setup`] (the operator's partners, customers and credit lines),
//! [`purchases`] (the purchase protocol, and [`fast`], the plain `CreatePurchase` and
//! `CreatePurchases` answered without a JSON tree, beside the general path and with its
//! checks), [`credit`] (allocation and the credit queries), [`customers`], [`vouchers`] (the
//! engine's voucher actions) and [`voucher_queries`] (the upstream ones), [`postpaid`],
//! [`bills`], [`warnings`], [`control`] (`Ping`, `AdvanceClock`), and [`operator`] (the test
//! double's controls: `SetFaults`, `DescribeFaults`, `ResetState`). The upstream actions
//! outside the engine's job are rows too: counted against their quota, then answered
//! `UnsupportedOperation`.
//!
//! What the upstream rows read and write, where the reference leaves room:
//! - Whose account: actions with a UIN parameter act on that account, as the engine
//!   authorizes (a partner on its own customers and second-level resellers, a customer on
//!   itself, the operator on everything; a distributor also reads the vouchers of its
//!   second-level resellers' customers). Actions without one (`QueryPartnerCredit`,
//!   `QueryDirectCustomersCredit`, `QueryCustomersCredit`, `DescribeCustomerUin`,
//!   `QuerySubAgentsDetailV2`, `QueryCustomerBillingQuota`, `QueryVoucherPool`,
//!   `DescribeCustomerOwnVoucherList`, `DescribeCustomerOwnVoucherUsageDetails`) read the
//!   caller's own account; the operator has none, so its call is counted against its quota
//!   and refused with `UnauthorizedOperation.UinNoAuth` ([`own_account`]).
//! - Paging: `Page` counts from 1; `PageSize` is 1 to 100 where the reference says so
//!   (`QuerySubAgentsDetailV2`, `QueryT1IndirectCustomersDetail`, the voucher lists and usage
//!   details) and 1 to [`crate::engine::PAGE_SIZE_MAX`] elsewhere; when optional they default
//!   to 1 and [`PAGE_SIZE_DEFAULT`]. Out of range is `InvalidParameter.Page`. Lists are
//!   ordered by association (binding) time, newest first unless `Order` says `asc`; voucher
//!   lists by voucher id, newest first; usage details newest first.
//! - Fields the engine has no data for are answered with a neutral value of the documented
//!   type; each family's file lists its own. A name, e-mail or remark never set is `""`.
//!
//! Invariant: every action has exactly one row (the table is a `match` over [`Action`], so a
//! missing one does not compile), and an offered row's parameters are all read and checked
//! before its handler runs.

pub mod bills;
pub mod control;
pub mod credit;
pub mod customers;
pub mod fast;
pub mod operator;
pub mod postpaid;
pub mod purchases;
pub mod setup;
pub mod voucher_queries;
pub mod vouchers;
pub mod warnings;

use futures::future::LocalBoxFuture;
use serde_json::{Map, Value};

use super::errors::ApiError;
use super::params::Params;
use crate::clock::OffsetClock;
use crate::domain::{Action, Caller, Rejection, Uin};
use crate::engine::{self, Engine};

/// What a handler answers: the `Response` object's fields (with `json!`), or an error.
pub type Answer = Result<Value, ApiError>;

/// What a row answers: the `Response` object's fields, or an error.
pub type Fields = Result<Map<String, Value>, ApiError>;

/// A row's whole answer: read, finish, handle.
type Run = for<'a> fn(&'a Context<'a>, Caller, Params) -> LocalBoxFuture<'a, Fields>;

/// The page size of `QueryCustomersCredit` and `QueryCreditAllocationHistory` when the
/// request names none (the reference gives no default).
pub const PAGE_SIZE_DEFAULT: usize = 20;

/// What a reader and a handler are given besides the parameters.
pub struct Context<'a> {
    pub engine: &'a Engine,
    /// The action being answered: the quota the call counts against, and the context its
    /// refusals take their codes in.
    pub action: Action,
    /// The server's adjustable clock, when the configuration sets `[engine]
    /// adjustable_clock = true`: what `AdvanceClock` moves.
    pub clock: Option<&'a OffsetClock>,
    /// The server itself: its faults, metrics, and the engine it may replace.
    pub server: &'a crate::api::server::Api,
}

impl Context<'_> {
    /// An engine error as this action's answer.
    pub fn refused(&self, error: engine::Error) -> ApiError {
        ApiError::from_engine(error, self.action)
    }

    /// A refusal as this action's answer.
    pub fn rejected(&self, rejection: &Rejection) -> ApiError {
        ApiError::rejected(rejection, self.action)
    }

    /// Counts the call against the action's quota, for answers that call no engine method
    /// (which would count it).
    pub fn admit(&self, caller: Caller) -> Result<(), ApiError> {
        self.engine.admit(caller, self.action).map_err(|rejection| self.rejected(&rejection))
    }
}

/// A row of the table.
pub struct Row {
    pub action: Action,
    /// Whether the engine offers the action (every upstream one it does not is still a row:
    /// counted, then answered `UnsupportedOperation`).
    pub offered: bool,
    run: Run,
}

impl Row {
    /// Answers a request for this row's action with its parameters.
    pub async fn answer(&self, context: &Context<'_>, caller: Caller, params: Params) -> Fields {
        debug_assert_eq!(context.action, self.action);
        (self.run)(context, caller, params).await
    }
}

/// Writes [`row`]: one arm per action. An offered action names its reader (`fn(&mut Params,
/// &Context) -> Result<R, ApiError>`) and its handler (`async fn(&Context, Caller, R) ->
/// Answer`); the arm reads, finishes the parameters, then handles.
macro_rules! table {
    (
        offered { $( $action:ident: $read:expr => $handle:expr; )+ }
        not offered { $( $other:ident ),+ $(,)? }
    ) => {
        /// The row of `action`.
        pub fn row(action: Action) -> &'static Row {
            match action {
                $( Action::$action => {
                    fn run<'a>(
                        context: &'a Context<'a>,
                        caller: Caller,
                        mut params: Params,
                    ) -> LocalBoxFuture<'a, Fields> {
                        Box::pin(async move {
                            let request = ($read)(&mut params, context)?;
                            params.finish()?;
                            ($handle)(context, caller, request).await.map(super::object)
                        })
                    }
                    static ROW: Row = Row { action: Action::$action, offered: true, run };
                    &ROW
                } )+
                $( Action::$other => {
                    static ROW: Row = Row { action: Action::$other, offered: false, run: not_offered };
                    &ROW
                } )+
            }
        }
    };
}

table! {
    offered {
        // ----- set-up (the operator) -----
        CreatePartner: setup::read_partner => setup::create_partner;
        CreateClient: setup::read_client => setup::create_client;
        GrantPartnerCredit: setup::read_grant => setup::grant_credit;
        // ----- purchases -----
        CreatePurchase: purchases::read_purchase => purchases::purchase;
        ReservePurchase: purchases::read_reservation => purchases::reserve;
        CommitPurchase: purchases::read_id => purchases::resolve;
        CancelPurchase: purchases::read_id => purchases::resolve;
        CreatePurchases: purchases::read_batch => purchases::purchase_batch;
        // ----- credit -----
        AllocateCustomerCredit: credit::read_allocation => credit::allocate_customer_credit;
        AllocateCreditPool: credit::read_pool_allocation => credit::allocate_credit_pool;
        QueryCreditByUinList: credit::read_uin_list => credit::query_credit_by_uin_list;
        QueryDirectCustomersCredit: nothing => credit::query_direct_customers_credit;
        QueryCustomersCredit: credit::read_customers_query => credit::query_customers_credit;
        QueryPartnerCredit: nothing => credit::query_partner_credit;
        QueryCreditAllocationHistory: credit::read_history_query => credit::query_allocation_history;
        QueryCustomerBillingQuota: credit::read_billing_quota => credit::query_customer_billing_quota;
        // ----- customers and sub-agents -----
        ForceQN: customers::read_suspension => customers::force_qn;
        ModifyClientRemark: customers::read_remark => customers::modify_client_remark;
        DescribeCustomerUin: customers::read_pages => customers::describe_customer_uin;
        DescribeCustomerInfo: customers::read_customer_uins => customers::describe_customer_info;
        QuerySubAgentsDetailV2: customers::read_sub_agents_query => customers::query_sub_agents_detail;
        QueryT1IndirectCustomersDetail: customers::read_indirect_query => customers::query_indirect_customers;
        // ----- vouchers: the engine's own -----
        GrantVoucherQuota: vouchers::read_quota_grant => vouchers::grant_voucher_quota;
        IssueCustomerVoucher: vouchers::read_customer_voucher => vouchers::issue_customer_voucher;
        ApplyPartnerVoucher: vouchers::read_partner_voucher => vouchers::apply_partner_voucher;
        ApprovePartnerVoucher: vouchers::read_voucher_id => vouchers::approve_partner_voucher;
        WithdrawCustomerVoucher: vouchers::read_voucher_id => vouchers::withdraw_customer_voucher;
        InvalidatePartnerVoucher: vouchers::read_voucher_id => vouchers::invalidate_partner_voucher;
        SetTrialVoucherPriority: vouchers::read_priority => vouchers::set_trial_voucher_priority;
        // ----- vouchers: the upstream queries -----
        QueryVoucherPool: nothing => voucher_queries::query_voucher_pool;
        QueryVoucherAmountByUin: voucher_queries::read_client_uins => voucher_queries::query_voucher_amount;
        QueryVoucherListByUin: voucher_queries::read_list_query => voucher_queries::query_voucher_list;
        DescribeCustomerVoucherList: voucher_queries::read_voucher_filter => voucher_queries::describe_vouchers;
        DescribeCustomerOwnVoucherList: voucher_queries::read_voucher_filter => voucher_queries::describe_vouchers;
        DescribeCustomerVoucherUsageDetails: voucher_queries::read_usage_query => voucher_queries::describe_usage;
        DescribeCustomerOwnVoucherUsageDetails: voucher_queries::read_usage_query => voucher_queries::describe_usage;
        // ----- frozen credit, bills, warnings -----
        ActivatePostpaid: postpaid::read_activation => postpaid::activate_postpaid;
        TerminatePostpaid: postpaid::read_resource => postpaid::terminate_postpaid;
        ConfirmBill: bills::read_customer_month => bills::confirm_bill;
        SettlePartnerBill: bills::read_partner_month => bills::settle_partner_bill;
        SetCreditWarning: warnings::read_threshold => warnings::set_credit_warning;
        // ----- the server itself -----
        Ping: nothing => control::ping;
        AdvanceClock: control::read_seconds => control::advance_clock;
        SetFaults: operator::read_faults => operator::set_faults;
        DescribeFaults: nothing => operator::describe_faults;
        ResetState: operator::read_reset => operator::reset_state;
        SaveSnapshot: operator::read_path => operator::save_snapshot;
        LoadSnapshot: operator::read_path => operator::load_snapshot;
    }
    not offered {
        ApproveClientApply, ApproveSubAgentApply, CreateAccount, CreateAndSendClientInvitationMail,
        DescribeBillDetail, DescribeBillDownloadUrl, DescribeBillSummary, DescribeBillSummaryByPayMode,
        DescribeBillSummaryByProduct, DescribeBillSummaryByRegion, DescribeCustomerBillDetail,
        DescribeCustomerBillDetailByDay, DescribeCustomerBillDownloadUrl, DescribeCustomerBillSummary,
        DescribeCustomerOwnCostExplorerFilter, DescribeCustomerOwnCostExplorerSummary,
        DescribeRebateDownloadUrl, GetCountryCodes, GetTradeConfigList, QueryAccountVerificationStatus,
        QueryInvitationInfo, QueryPendingClientsV2, QueryPendingSubAgentsV2, QueryPolicyProductListByCode,
        SendVerifyCode,
    }
}

/// The reader of an action without parameters.
fn nothing(_: &mut Params, _: &Context) -> Result<(), ApiError> {
    Ok(())
}

/// An upstream action outside the engine's job (bill and commission files, identity
/// verification, invitations): counted against its quota like every call, then refused.
/// Its parameters are not read.
fn not_offered<'a>(context: &'a Context<'a>, caller: Caller, _: Params) -> LocalBoxFuture<'a, Fields> {
    Box::pin(async move {
        context.admit(caller)?;
        Err(ApiError::new(
            "UnsupportedOperation",
            format!("{} is an upstream action this engine does not offer", context.action),
        ))
    })
}

/// The account an action without a UIN parameter reads: the caller's own. The operator has
/// none: its call is counted against its quota, like every call, and refused. Called by the
/// handler, after the parameters are read, so that a malformed request is not counted.
fn own_account(context: &Context, caller: Caller) -> Result<Uin, ApiError> {
    match caller {
        Caller::Uin(uin) => Ok(uin),
        Caller::Operator => {
            context.admit(caller)?;
            Err(ApiError::new(
                "UnauthorizedOperation.UinNoAuth",
                format!(
                    "{} reads the calling partner's or customer's own account and the operator has \
                     none: call it with that account's key",
                    context.action
                ),
            ))
        }
    }
}

/// A page number or size: required when `default` is `None`. Negative values are refused
/// here; zero and values above the largest page by the engine, with the same code.
fn page_param(
    params: &mut Params,
    name: &'static str,
    default: Option<usize>,
    context: &Context,
) -> Result<usize, ApiError> {
    let value = match default {
        None => params.required_integer(name)?,
        Some(default) => match params.integer(name)? {
            None => return Ok(default),
            Some(value) => value,
        },
    };
    usize::try_from(value).map_err(|_| {
        let rejection =
            Rejection::InvalidParameter { parameter: name, reason: format!("{value} is negative") };
        context.rejected(&rejection)
    })
}

/// `FilterType`: one of the names `from_name` knows (`choices` lists them for the error); an
/// empty one is no filter.
fn filter_type<F>(
    params: &mut Params,
    from_name: impl FnOnce(&str) -> Option<F>,
    choices: &str,
) -> Result<Option<F>, ApiError> {
    match params.string("FilterType")? {
        None => Ok(None),
        Some(name) if name.is_empty() => Ok(None),
        Some(name) => from_name(&name)
            .map(Some)
            .ok_or_else(|| ApiError::value("FilterType", format!("{name:?} is not {choices}"))),
    }
}

/// `FilterType` and `Filter` together; an empty `Filter` is no filter.
fn filter_of<F>(field: Option<F>, value: Option<String>) -> Result<Option<(F, String)>, ApiError> {
    match (field, value) {
        (_, None) => Ok(None),
        (_, Some(value)) if value.is_empty() => Ok(None),
        (Some(field), Some(value)) => Ok(Some((field, value))),
        (None, Some(_)) => Err(ApiError::missing("FilterType")),
    }
}

/// `Order`: `asc` or `desc` (any case; `acs` too, as the reference of
/// `QuerySubAgentsDetailV2` spells it); descending when absent or empty.
fn order_of(order: Option<String>) -> Result<bool, ApiError> {
    match order.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("") | Some("desc") => Ok(false),
        Some("asc") | Some("acs") => Ok(true),
        Some(_) => Err(ApiError::value("Order", "must be asc or desc")),
    }
}

/// The longest `ProductCode`, `Name` or `Email` accepted.
const TEXT_MAX: usize = 256;

/// Whether a text is 1 to [`TEXT_MAX`] characters, as every optional name, e-mail and
/// product code must be.
fn text_fits(text: &str) -> bool {
    !text.is_empty() && text.chars().count() <= TEXT_MAX
}

/// An optional string of 1 to [`TEXT_MAX`] characters.
fn text(params: &mut Params, name: &str) -> Result<Option<String>, ApiError> {
    match params.string(name)? {
        Some(text) if !text_fits(&text) => {
            Err(ApiError::value(name, format!("must be 1 to {TEXT_MAX} characters")))
        }
        other => Ok(other),
    }
}

/// A profile text as the API writes it: `""` when never set.
fn profile_text(value: &Option<Box<str>>) -> &str {
    value.as_deref().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_own_action_and_21_upstream_ones_are_offered() {
        for action in Action::ALL {
            assert_eq!(row(*action).action, *action);
        }
        let offered: Vec<Action> =
            Action::ALL.iter().copied().filter(|action| row(*action).offered).collect();
        assert!(Action::ALL.iter().filter(|action| action.is_own()).all(|action| offered.contains(action)));
        assert_eq!(offered.iter().filter(|action| !action.is_own()).count(), 21);
    }

    #[test]
    fn orders_and_filters() {
        assert_eq!(order_of(None), Ok(false));
        assert_eq!(order_of(Some("".into())), Ok(false));
        assert_eq!(order_of(Some("Desc".into())), Ok(false));
        assert_eq!(order_of(Some("ASC".into())), Ok(true));
        assert_eq!(order_of(Some("acs".into())), Ok(true));
        assert_eq!(order_of(Some("up".into())).unwrap_err().code, "InvalidParameterValue");
        assert_eq!(filter_of(Some(1), Some("x".into())), Ok(Some((1, "x".into()))));
        assert_eq!(filter_of(Some(1), Some("".into())), Ok(None));
        assert_eq!(filter_of::<u8>(None, None), Ok(None));
        assert_eq!(filter_of::<u8>(None, Some("x".into())).unwrap_err().code, "MissingParameter");
    }
}
