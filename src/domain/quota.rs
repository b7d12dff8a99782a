//! Actions and their per-second quotas: the rate-limit rules as data.
//!
//! Every request to the engine is one [`Action`]: an upstream intlpartnersmgt action or one
//! of the engine's own. The documented quotas ([`DOCUMENTED_QUOTAS`], from the upstream
//! "API Category" page) apply per calling UIN and action; the operator is one more caller.
//! The engine's own actions and the four upstream actions the page does not list have no
//! quota unless configured. A [`QuotaTable`] is the documented table with overrides applied.
//!
//! What "N per second" admits (the generic cell rate algorithm, as `governor` implements
//! it): a caller starts with a burst of N; each admitted call uses one, and one comes back
//! every 1/N s (rounded up to the nanosecond) up to N. So from a fresh state N calls at the same instant are admitted and
//! one more at that instant is refused, and over any window of T seconds (both ends
//! included) a caller is admitted at most N x (T + 1) times for one action. A refused call
//! uses nothing.

use std::fmt;
use std::num::NonZeroU32;

macro_rules! actions {
    ($($(#[$doc:meta])* $name:ident),+ $(,)?) => {
        /// One kind of request, named as in the API (`X-TC-Action`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        pub enum Action {
            $($(#[$doc])* $name,)+
        }

        impl Action {
            /// Every action, in declaration order (`ALL[a as usize] == a`).
            pub const ALL: &'static [Action] = &[$(Action::$name,)+];

            /// The action's API name.
            pub fn name(self) -> &'static str {
                match self {
                    $(Action::$name => stringify!($name),)+
                }
            }

            /// The action with this API name (case-sensitive, as the API is).
            pub fn from_name(name: &str) -> Option<Action> {
                match name {
                    $(stringify!($name) => Some(Action::$name),)+
                    _ => None,
                }
            }
        }
    };
}

actions! {
    // ----- upstream (intlpartnersmgt 2022-09-28) -----
    AllocateCreditPool,
    AllocateCustomerCredit,
    ApproveClientApply,
    ApproveSubAgentApply,
    CreateAccount,
    CreateAndSendClientInvitationMail,
    DescribeBillDetail,
    DescribeBillDownloadUrl,
    DescribeBillSummary,
    DescribeBillSummaryByPayMode,
    DescribeBillSummaryByProduct,
    DescribeBillSummaryByRegion,
    DescribeCustomerBillDetail,
    DescribeCustomerBillDetailByDay,
    DescribeCustomerBillDownloadUrl,
    DescribeCustomerBillSummary,
    DescribeCustomerInfo,
    DescribeCustomerOwnCostExplorerFilter,
    DescribeCustomerOwnCostExplorerSummary,
    DescribeCustomerOwnVoucherList,
    DescribeCustomerOwnVoucherUsageDetails,
    DescribeCustomerUin,
    DescribeCustomerVoucherList,
    DescribeCustomerVoucherUsageDetails,
    DescribeRebateDownloadUrl,
    ForceQN,
    GetCountryCodes,
    GetTradeConfigList,
    ModifyClientRemark,
    QueryAccountVerificationStatus,
    QueryCreditAllocationHistory,
    QueryCreditByUinList,
    QueryCustomerBillingQuota,
    QueryCustomersCredit,
    QueryDirectCustomersCredit,
    QueryInvitationInfo,
    QueryPartnerCredit,
    QueryPendingClientsV2,
    QueryPendingSubAgentsV2,
    QueryPolicyProductListByCode,
    QuerySubAgentsDetailV2,
    QueryT1IndirectCustomersDetail,
    QueryVoucherAmountByUin,
    QueryVoucherListByUin,
    QueryVoucherPool,
    SendVerifyCode,
    // ----- the engine's own -----
    /// Set-up: a distributor, reseller or second-level reseller.
    CreatePartner,
    /// Set-up: a customer.
    CreateClient,
    /// Set-up: a change of a partner's credit line.
    GrantPartnerCredit,
    /// A one-shot purchase.
    CreatePurchase,
    ReservePurchase,
    CommitPurchase,
    CancelPurchase,
    /// A batch of one-shot purchases: one request, whatever its length.
    CreatePurchases,
    /// An action that does nothing: the server's cost without the engine's, for benches.
    Ping,
    /// Vouchers: the operator adds to a partner's pool for customer vouchers.
    GrantVoucherQuota,
    /// A customer voucher (Type III, CustomerOffer) from the caller's pool.
    IssueCustomerVoucher,
    /// A partner voucher (Type I General or Type II ProductTrial), pending approval.
    ApplyPartnerVoucher,
    ApprovePartnerVoucher,
    WithdrawCustomerVoucher,
    InvalidatePartnerVoucher,
    SetTrialVoucherPriority,
    /// Frozen credit of postpaid resources.
    ActivatePostpaid,
    TerminatePostpaid,
    /// Bill months: a customer's by its partner, a partner's by the operator.
    ConfirmBill,
    SettlePartnerBill,
    /// A custom credit warning threshold.
    SetCreditWarning,
    /// Moves a server's clock forward (only with `[engine] adjustable_clock`).
    AdvanceClock,
    /// The server's fault injection: replaces the list of faults (operator).
    SetFaults,
    /// The server's fault injection: the list of faults in force (operator).
    DescribeFaults,
    /// Replaces the server's state with an empty one or the world it started with (operator).
    ResetState,
    /// Writes the server's whole state to a snapshot file (operator).
    SaveSnapshot,
    /// Replaces the server's state with a snapshot file's (operator).
    LoadSnapshot,
}

impl Action {
    /// How many actions there are.
    pub const COUNT: usize = Action::ALL.len();

    /// Whether the action is one of the engine's own rather than an upstream one.
    pub fn is_own(self) -> bool {
        self >= Action::CreatePartner
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A per-second quota: a burst of `N`, refilled at `N` per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quota(NonZeroU32);

/// The largest quota accepted: one call per nanosecond, the finest interval the limiter
/// keeps.
pub const QUOTA_MAX: u32 = 1_000_000_000;

impl Quota {
    /// `N` per second, for `N` in 1 ..= [`QUOTA_MAX`].
    pub const fn per_second(n: u32) -> Result<Quota, QuotaError> {
        match NonZeroU32::new(n) {
            Some(n) if n.get() <= QUOTA_MAX => Ok(Quota(n)),
            _ => Err(QuotaError(n)),
        }
    }

    pub const fn get(self) -> u32 {
        self.0.get()
    }

    pub const fn nonzero(self) -> NonZeroU32 {
        self.0
    }
}

/// A quota outside 1 ..= [`QUOTA_MAX`] per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a quota is 1 to {QUOTA_MAX} requests per second, got {0}")]
pub struct QuotaError(pub u32);

/// The 42 quotas of the upstream "API Category" page (maximum requests per second per
/// caller), in the page's order.
pub const DOCUMENTED_QUOTAS: [(Action, u32); 42] = [
    // Customer management
    (Action::QueryVoucherAmountByUin, 5),
    (Action::QueryVoucherListByUin, 5),
    (Action::DescribeCustomerUin, 20),
    (Action::GetCountryCodes, 5),
    (Action::QueryVoucherPool, 5),
    (Action::CreateAccount, 5),
    (Action::DescribeCustomerInfo, 20),
    (Action::QueryAccountVerificationStatus, 20),
    (Action::QueryInvitationInfo, 20),
    (Action::ApproveClientApply, 5),
    (Action::ApproveSubAgentApply, 20),
    (Action::CreateAndSendClientInvitationMail, 1),
    (Action::GetTradeConfigList, 20),
    (Action::QueryPendingClientsV2, 5),
    (Action::QueryPendingSubAgentsV2, 20),
    (Action::QuerySubAgentsDetailV2, 20),
    (Action::QueryT1IndirectCustomersDetail, 20),
    (Action::SendVerifyCode, 20),
    // Credit management
    (Action::QueryCreditByUinList, 5),
    (Action::AllocateCreditPool, 5),
    (Action::AllocateCustomerCredit, 5),
    (Action::ForceQN, 2),
    (Action::QueryCreditAllocationHistory, 5),
    (Action::QueryCustomersCredit, 5),
    (Action::QueryDirectCustomersCredit, 5),
    (Action::QueryPartnerCredit, 5),
    // Agent
    (Action::QueryCustomerBillingQuota, 5),
    (Action::ModifyClientRemark, 5),
    // Bill management
    (Action::DescribeBillSummary, 1),
    (Action::DescribeBillDownloadUrl, 20),
    (Action::DescribeCustomerBillDownloadUrl, 20),
    (Action::DescribeCustomerBillDetail, 5),
    (Action::DescribeCustomerBillSummary, 1),
    (Action::DescribeBillDetail, 1),
    (Action::DescribeCustomerBillDetailByDay, 20),
    (Action::DescribeBillSummaryByPayMode, 1),
    (Action::DescribeBillSummaryByProduct, 1),
    (Action::DescribeBillSummaryByRegion, 1),
    (Action::QueryPolicyProductListByCode, 20),
    // Voucher management
    (Action::DescribeCustomerVoucherList, 20),
    (Action::DescribeCustomerOwnVoucherList, 20),
    // Commission management
    (Action::DescribeRebateDownloadUrl, 20),
];

/// The quota of every action: the documented ones, then overrides. `None` is no quota.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaTable {
    quotas: [Option<Quota>; Action::COUNT],
}

impl QuotaTable {
    /// The documented quotas; no quota for the engine's own actions or undocumented ones.
    pub fn documented() -> QuotaTable {
        let mut quotas = [None; Action::COUNT];
        for (action, n) in DOCUMENTED_QUOTAS {
            quotas[action as usize] = Some(Quota::per_second(n).expect("documented quotas are positive"));
        }
        QuotaTable { quotas }
    }

    /// No quota on any action.
    pub fn unlimited() -> QuotaTable {
        QuotaTable { quotas: [None; Action::COUNT] }
    }

    pub fn get(&self, action: Action) -> Option<Quota> {
        self.quotas[action as usize]
    }

    /// Sets (or with `None` removes) one action's quota.
    pub fn set(&mut self, action: Action, quota: Option<Quota>) {
        self.quotas[action as usize] = quota;
    }

    /// The table with `overrides` applied in order.
    pub fn with(mut self, overrides: impl IntoIterator<Item = (Action, Option<Quota>)>) -> QuotaTable {
        for (action, quota) in overrides {
            self.set(action, quota);
        }
        self
    }

    /// Every action with a quota.
    pub fn iter(&self) -> impl Iterator<Item = (Action, Quota)> + '_ {
        Action::ALL.iter().filter_map(|&action| Some((action, self.get(action)?)))
    }
}

impl Default for QuotaTable {
    fn default() -> QuotaTable {
        QuotaTable::documented()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_index_the_table() {
        for (index, &action) in Action::ALL.iter().enumerate() {
            assert_eq!(action as usize, index);
            assert_eq!(Action::from_name(action.name()), Some(action));
        }
        assert_eq!(Action::from_name("forceqn"), None);
        assert_eq!(Action::from_name(""), None);
        assert_eq!(Action::ALL.iter().filter(|action| !action.is_own()).count(), 46);
    }

    #[test]
    fn quota_bounds() {
        let cases =
            [(0, false), (1, true), (5, true), (QUOTA_MAX, true), (QUOTA_MAX + 1, false), (u32::MAX, false)];
        for (n, ok) in cases {
            assert_eq!(Quota::per_second(n).is_ok(), ok, "{n}");
        }
        assert_eq!(
            Quota::per_second(0).unwrap_err().to_string(),
            "a quota is 1 to 1000000000 requests per second, got 0"
        );
    }

    #[test]
    fn documented_quotas_are_upstream_and_distinct() {
        let mut seen = std::collections::BTreeSet::new();
        for (action, _) in DOCUMENTED_QUOTAS {
            assert!(!action.is_own(), "{action}");
            assert!(seen.insert(action), "{action} twice");
        }
    }

    #[test]
    fn table_defaults_and_overrides() {
        let five = Quota::per_second(5).unwrap();
        let table = QuotaTable::documented();
        assert_eq!(table.get(Action::AllocateCustomerCredit), Some(five));
        assert_eq!(table.get(Action::ForceQN), Quota::per_second(2).ok());
        assert_eq!(table.get(Action::CreatePurchase), None);
        assert_eq!(table.get(Action::DescribeCustomerVoucherUsageDetails), None);
        assert_eq!(table.iter().count(), 42);

        let ten = Quota::per_second(10).unwrap();
        let table = table.with([
            (Action::CreatePurchase, Some(ten)),
            (Action::ForceQN, None),
            (Action::AllocateCustomerCredit, Some(ten)),
        ]);
        assert_eq!(table.get(Action::CreatePurchase), Some(ten));
        assert_eq!(table.get(Action::ForceQN), None);
        assert_eq!(table.get(Action::AllocateCustomerCredit), Some(ten));
        assert_eq!(table.get(Action::QueryPartnerCredit), Some(five));
        assert_eq!(QuotaTable::unlimited().iter().count(), 0);
    }
}
