//! The domain: pure, synchronous rules with no I/O, no clock, no threads and no serde.
//!
//! Invariant: nothing here knows about actors, runtimes, HTTP or JSON; time is passed in.

pub mod account;
pub mod ids;
pub mod money;
pub mod quota;
pub mod rejection;

pub use account::{
    Account, AccountKind, AccountView, AllocationRecord, Command, CreditLine, CustomerCredit, PartnerCredit,
    PoolCredit, Profile, RecordInfo, Reply, Role,
};
pub use ids::{Caller, PurchaseId, PurchaseIdError, Timestamp, Uin};
pub use money::{Money, MoneyError};
pub use quota::{Action, Quota, QuotaError, QuotaTable, DOCUMENTED_QUOTAS, QUOTA_MAX};
pub use rejection::{KindRequired, Rejection};
