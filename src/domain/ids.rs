//! Identifiers: UINs, purchase ids, the caller of an operation, and time stamps.
//!
//! Invariant: a [`PurchaseId`] is 1 to 64 characters with no control characters; ids up to
//! 24 bytes are stored inline, without a heap allocation.

use std::fmt;

use compact_str::CompactString;

/// The account number of a distributor, reseller, second-level reseller or customer.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uin(pub u64);

impl fmt::Display for Uin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Uin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uin({})", self.0)
    }
}

/// A client-chosen purchase id: the key of idempotency and of the two-phase protocol.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PurchaseId(CompactString);

/// Why a text is not a valid purchase id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a PurchaseId has 1 to 64 characters and no control characters")]
pub struct PurchaseIdError;

impl PurchaseId {
    pub const LEN_MAX: usize = 64;

    pub fn new(text: &str) -> Result<PurchaseId, PurchaseIdError> {
        let count = text.chars().count();
        if count == 0 || count > Self::LEN_MAX || text.chars().any(char::is_control) {
            return Err(PurchaseIdError);
        }
        Ok(PurchaseId(CompactString::new(text)))
    }

    /// `{prefix}{first}-{second}`, formatted without a heap allocation when it fits inline
    /// (24 bytes): for generated ids (the load generator, the benches).
    pub fn numbered(prefix: &str, first: u64, second: u64) -> Result<PurchaseId, PurchaseIdError> {
        PurchaseId::new(&compact_str::format_compact!("{prefix}{first}-{second}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A stable hash that places the purchase on a coordinator partition (FNV-1a, so that
    /// the placement does not depend on the process's random hasher seed).
    pub fn partition_hash(&self) -> u64 {
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        for byte in self.0.as_bytes() {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash
    }
}

impl fmt::Display for PurchaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PurchaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PurchaseId({:?})", self.0.as_str())
    }
}

/// Who performs an operation: the platform operator or the owner of a UIN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Caller {
    /// The platform ("channel manager"): may act on every account.
    Operator,
    /// A distributor, reseller, second-level reseller or customer acting for itself.
    Uin(Uin),
}

impl Caller {
    pub fn is(self, uin: Uin) -> bool {
        self == Caller::Uin(uin)
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caller::Operator => f.write_str("operator"),
            Caller::Uin(uin) => write!(f, "{uin}"),
        }
    }
}

/// Milliseconds since the Unix epoch (UTC). The domain never reads a clock; callers pass
/// the time in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn plus_ms(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }

    pub fn as_ms(self) -> i64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purchase_id_table() {
        let cases: &[(&str, bool)] = &[
            ("p-1", true),
            ("a", true),
            (&"x".repeat(64), true),
            (&"x".repeat(65), false),
            ("", false),
            ("tab\there", false),
            ("ünïcödé-✓", true),
        ];
        for (text, valid) in cases {
            assert_eq!(PurchaseId::new(text).is_ok(), *valid, "{text:?}");
        }
    }

    #[test]
    fn numbered_ids() {
        assert_eq!(PurchaseId::numbered("t", 3, 42).unwrap().as_str(), "t3-42");
        assert!(PurchaseId::numbered(&"x".repeat(64), 1, 1).is_err());
    }

    #[test]
    fn partition_hash_is_stable() {
        let id = PurchaseId::new("p-1").unwrap();
        assert_eq!(id.partition_hash(), PurchaseId::new("p-1").unwrap().partition_hash());
        assert_ne!(id.partition_hash(), PurchaseId::new("p-2").unwrap().partition_hash());
    }
}
