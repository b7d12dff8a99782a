//! `partner-credit`: an in-memory transaction engine for a cloud partner programme's credit.
//!
//! Distributors, second-level resellers, resellers and customers are UINs; each UIN's credit
//! is owned by one actor. A purchase reserves on the customer and on the partner charged for
//! it, then commits both or releases both.
//!
//! The components, from the inside out (docs/ARCHITECTURE.md has the code map):
//! - [`domain`]: pure rules: money and ids, who may act on what (`access`), the refusals in
//!   precedence order (`rejection`), accounts and their commands by concept (`account/`),
//!   vouchers, bills, warnings and quotas;
//! - [`coordinator`]: the purchase ledger, the two-phase saga and hot partners' escrow, as
//!   state machines;
//! - [`runtime`]: how actors map to threads (`sharded`: one thread per core, the default;
//!   `actix`: one actix actor per UIN, the reference);
//! - [`engine`]: the async API that everything else calls, one file per concept;
//!   [`limits`]: its rate limits;
//! - [`events`]: the in-process event bus the engine publishes credit warnings on;
//! - [`journal`]: the on-disk journal of opaque records (group commit) and snapshot files;
//! - [`api`]: the HTTP API server (feature `http`, on by default);
//! - [`world`]: hierarchies to import, from a file or generated; [`audit`]: the books' check;
//! - [`load`]: the `partner-credit load` job (feature `load`); [`bench`]: the runtimes side
//!   by side (feature `bench`). Both are tools beside the library, on by default: an embedder
//!   with `default-features = false` compiles neither.

#[cfg(feature = "http")]
pub mod api;
pub mod audit;
#[cfg(feature = "bench")]
pub mod bench;
pub mod cache;
pub mod clock;
pub mod coordinator;
pub mod domain;
pub mod engine;
pub mod events;
pub mod journal;
pub mod limits;
#[cfg(feature = "load")]
pub mod load;
pub mod runtime;
pub mod world;

pub use audit::Audit;
pub use clock::{Clock, ManualClock, SystemClock};
pub use coordinator::{Outcome, PurchaseReceipt, PurchaseRequest, ReservationReceipt};
pub use domain::{Action, Caller, Money, PurchaseId, Quota, QuotaTable, Rejection, Timestamp, Uin};
pub use engine::{Engine, EngineConfig, EngineResult, Error, OpenError};
pub use runtime::{Failure, RuntimeKind};
pub use world::{World, WorldSpec};
