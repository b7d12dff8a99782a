//! The domain: pure, synchronous rules with no I/O, no clock and no threads.
//!
//! Invariant: nothing here knows about actors, runtimes, HTTP or JSON; time is passed in.
//! The state types and commands derive serde's traits so that the journal can write them,
//! but no format lives here: the API's JSON shapes are in `api`, the journal's bytes in
//! `journal` and `engine::durable`.

/// Declares an enum whose variants are named in the API exactly as in Rust, with `ALL` (every
/// variant, in order), `name` and `from_name` (exact, case-sensitive, as the API is).
macro_rules! named {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$variant_meta:meta])* $variant:ident,)+ }) => {
        $(#[$meta])*
        $vis enum $name {
            $($(#[$variant_meta])* $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: [$name; [$(stringify!($variant)),+].len()] = [$($name::$variant),+];

            /// The API name.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => stringify!($variant),)+
                }
            }

            /// The variant with this API name, exactly.
            pub fn from_name(name: &str) -> Option<$name> {
                match name {
                    $(stringify!($variant) => Some($name::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

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
