//! The domain: pure, synchronous rules with no I/O, no clock, no threads and no serde.
//!
//! Invariant: nothing here knows about actors, runtimes, HTTP or JSON; time is passed in.

pub mod access;
pub mod account;
pub mod bill;
pub mod ids;
pub mod money;
pub mod quota;
pub mod rejection;
pub mod voucher;
pub mod warning;

pub use account::{
    Account, AccountDetails, AccountKind, AccountView, AllocationRecord, Command, Credit, CreditLine,
    CustomerCredit, Goods, PartnerCredit, PoolCredit, Profile, RecordInfo, Reply, Request, Role, Settlement,
    VoucherPool,
};
pub use ids::{Caller, Month, PurchaseId, PurchaseIdError, Timestamp, Uin, VoucherId};
pub use money::{Money, MoneyError};
pub use quota::{Action, Quota, QuotaError, QuotaTable, DOCUMENTED_QUOTAS, QUOTA_MAX};
pub use rejection::{KindRequired, Rejection};
pub use voucher::{
    Deductions, PayMode, PaymentMode, ProductScope, Scope, Usage, UsageInfo, UsageRecord, Voucher,
    VoucherBook, VoucherKind, VoucherStatus,
};
pub use warning::{Crossings, Recipients, Threshold, WarningLevel, WarningState};
