//! The server's TOML configuration (`partner-credit serve --config FILE`).
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! world = "world.json"          # optional: a hierarchy to import at start
//!
//! [operator]
//! secret_id = "..."
//! secret_key = "..."
//!
//! [[keys]]                      # any number: a key acts as its UIN
//! secret_id = "..."
//! secret_key = "..."
//! uin = 3000000
//!
//! [tls]                         # optional: serve HTTPS
//! cert = "cert.pem"
//! key = "key.pem"
//!
//! [quotas]                      # optional: per-second quota per caller, or "none"
//! CreatePurchase = 100000
//! ForceQN = "none"
//!
//! [engine]                      # optional: runtime settings
//! runtime = "sharded"
//! freezing_coefficient_default = 0.5   # ActivatePostpaid without FreezingCoefficient (1)
//! adjustable_clock = true       # AdvanceClock may move the clock forward (off)
//! data_dir = "data"             # keep a journal and snapshots there (in memory only without)
//! fsync = "always"              # or "interval:<ms>", or "never" (always)
//! snapshot_bytes = 134217728    # a snapshot each time the journal grew by this much (128 MiB; 4 KiB to 1 TiB)
//! segment_bytes = 67108864      # a journal segment ends once past this size (64 MiB; 4 KiB to 1 GiB)
//!
//! [[webhooks]]                  # any number: every event is posted to each (see `webhook`)
//! url = "http://127.0.0.1:9000/credit-events"
//! secret = "..."
//!
//! [[faults]]                    # any number: the faults in force at start (see `faults`)
//! action = "CreatePurchase"     # or "*"
//! caller_uin = 1000201          # optional
//! probability = 0.3
//! code = "InternalError"        # or delay_ms = 300, or drop = true
//! seed = 7                      # optional
//!
//! [admin]                       # optional: GET /health and GET /metrics
//! metrics = true                # count and serve /metrics (on)
//! listen = "127.0.0.1:9090"     # serve both there instead of on the API's address
//! ```
//!
//! Relative paths are relative to the configuration file.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::domain::{Action, Quota, QuotaTable, Rejection, Uin};
use crate::engine::EngineConfig;
use crate::runtime::RuntimeKind;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub operator: Secret,
    #[serde(default)]
    pub keys: Vec<Key>,
    pub tls: Option<Tls>,
    #[serde(default)]
    pub quotas: BTreeMap<String, QuotaSetting>,
    #[serde(default)]
    pub engine: EngineSettings,
    #[serde(default)]
    pub http: HttpSettings,
    /// A world file (the format `partner-credit load --write-world` writes) to import at
    /// start.
    pub world: Option<PathBuf>,
    /// Where the engine's events (credit warnings) are posted.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// The faults in force at start; `SetFaults` replaces them.
    #[serde(default)]
    pub faults: Vec<super::faults::FaultSetting>,
    #[serde(default)]
    pub admin: AdminSettings,
}

/// `[admin]`: the health and metrics endpoints, which are not API actions.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    /// Count answers and serve `GET /metrics` (on). Off, nothing is counted and `/metrics`
    /// answers 404.
    pub metrics: bool,
    /// Serve `/health` and `/metrics` on this address instead of the API's (plain HTTP).
    pub listen: Option<SocketAddr>,
}

impl Default for AdminSettings {
    fn default() -> AdminSettings {
        AdminSettings { metrics: true, listen: None }
    }
}

/// One `[[webhooks]]` entry: every event is posted to `url` as JSON, signed with `secret`
/// (see [`super::webhook`]).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://host:port/path`. Not https: the server has only a plain HTTP client.
    pub url: String,
    /// The HMAC-SHA256 key of the `X-PartnerCredit-Signature` header; non-empty.
    pub secret: String,
    /// Tries per event, the first included, before it counts as failed (5; 1 to 20).
    #[serde(default = "WebhookConfig::attempts_default")]
    pub attempts: u32,
    /// Events waiting for delivery; an event that finds the queue full is dropped and
    /// counted (10,000; 1 to 1,000,000).
    #[serde(default = "WebhookConfig::queue_default")]
    pub queue: usize,
    /// How long one attempt may take, from connecting to the end of the answer (5000; 1 to
    /// 600,000).
    #[serde(default = "WebhookConfig::timeout_ms_default")]
    pub timeout_ms: u64,
}

impl WebhookConfig {
    pub const ATTEMPTS_MAX: u32 = 20;
    pub const QUEUE_MAX: usize = crate::events::EventBus::CAPACITY_MAX;
    pub const TIMEOUT_MS_MAX: u64 = 600_000;

    fn attempts_default() -> u32 {
        5
    }

    fn queue_default() -> usize {
        10_000
    }

    fn timeout_ms_default() -> u64 {
        5000
    }

    /// Checks what TOML types cannot; the message names the setting.
    pub fn validate(&self) -> Result<(), String> {
        super::webhook::Endpoint::parse(&self.url)
            .map_err(|message| format!("url {}: {message}", self.url))?;
        if self.secret.is_empty() {
            return Err("secret must be non-empty".into());
        }
        if !(1..=Self::ATTEMPTS_MAX).contains(&self.attempts) {
            return Err(format!("attempts must be 1 to {}, not {}", Self::ATTEMPTS_MAX, self.attempts));
        }
        if !(1..=Self::QUEUE_MAX).contains(&self.queue) {
            return Err(format!("queue must be 1 to {}, not {}", Self::QUEUE_MAX, self.queue));
        }
        if !(1..=Self::TIMEOUT_MS_MAX).contains(&self.timeout_ms) {
            return Err(format!("timeout_ms must be 1 to {}, not {}", Self::TIMEOUT_MS_MAX, self.timeout_ms));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secret {
    pub secret_id: String,
    pub secret_key: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Key {
    pub secret_id: String,
    pub secret_key: String,
    /// The UIN this key acts as; the account may be created later.
    pub uin: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A quota in the configuration: requests per second, or `"none"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum QuotaSetting {
    PerSecond(u32),
    Word(String),
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSettings {
    /// `sharded` (default) or `actix`.
    pub runtime: Option<String>,
    pub workers: Option<usize>,
    pub mailbox_capacity: Option<usize>,
    pub reservation_timeout_ms_default: Option<i64>,
    pub resolved_retention_ms: Option<i64>,
    pub resolved_capacity: Option<usize>,
    pub open_reservations_max: Option<usize>,
    /// The longest reservation timeout, in milliseconds (a whole number of seconds, 1000 to
    /// 86400000). It also decides when a bill month is final: its end plus this plus 60 s.
    /// When set below 60000 without `reservation_timeout_ms_default`, the default follows it.
    pub reservation_timeout_ms_max: Option<i64>,
    /// Hot partners whose credit is split into per-shard slices.
    #[serde(default)]
    pub escrow_partners: Vec<u64>,
    /// The freezing coefficient of an `ActivatePostpaid` that names none: 0 to 1, at most 8
    /// decimals (1). A number, or a string for an exact decimal.
    pub freezing_coefficient_default: Option<DecimalSetting>,
    /// Runs the engine on a clock that the operator's `AdvanceClock` moves forward, to
    /// rehearse month ends and expiries on a running server (off). Signatures are still
    /// checked against the real time.
    #[serde(default)]
    pub adjustable_clock: bool,
    /// Where the journal and snapshots go; the state is kept in memory only without one.
    pub data_dir: Option<PathBuf>,
    /// When the journal is fsynced: `always` (the default), `interval:<ms>` or `never`.
    pub fsync: Option<String>,
    /// Journal bytes after which the engine writes a snapshot in the background, and so
    /// about the most a restart replays (128 MiB). Small values make snapshots frequent,
    /// which the crash test uses to kill the server while one is written.
    pub snapshot_bytes: Option<u64>,
    /// The size past which a journal segment ends and the next begins (64 MiB).
    pub segment_bytes: Option<u64>,
}

/// A decimal in the configuration: a TOML integer, a float (read through its shortest
/// representation, so `0.3` is exactly 0.3), or a string holding the decimal.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum DecimalSetting {
    Integer(i64),
    Float(f64),
    Text(String),
}

impl DecimalSetting {
    pub fn decimal(&self) -> Result<rust_decimal::Decimal, String> {
        use std::str::FromStr;
        match self {
            DecimalSetting::Integer(value) => Ok(rust_decimal::Decimal::from(*value)),
            DecimalSetting::Float(value) => rust_decimal::Decimal::from_str(&value.to_string())
                .map_err(|error| format!("{value} is not a decimal: {error}")),
            DecimalSetting::Text(text) => rust_decimal::Decimal::from_str_exact(text.trim())
                .map_err(|error| format!("{text:?} is not a decimal: {error}")),
        }
    }
}

/// Every field may be left out for its default.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// HTTP worker threads (1 by default: on a small machine the engine's shards want the
    /// other cores).
    pub workers: usize,
    /// The largest request body accepted, in bytes (4 MiB: a batch of 8189 purchases is
    /// about 1 MiB).
    pub body_limit: usize,
    /// How long a request's body may take to arrive, in seconds (30).
    pub body_timeout_secs: u64,
    /// Bytes of request bodies all connections may hold at once (256 MiB); past it,
    /// requests are refused with `RequestLimitExceeded`.
    pub buffered_bytes_max: usize,
    /// How far a request's timestamp may be from the server's clock, in seconds (300).
    pub timestamp_skew_secs: i64,
    /// Keep-alive timeout of idle connections, in seconds (75).
    pub keep_alive_secs: u64,
    /// Connections open at once per worker (25,000).
    pub max_connections: usize,
    /// Refuse requests whose signature does not cover `X-TC-Action` (off: the official
    /// SDKs sign only `content-type;host`, so within the timestamp window a captured body
    /// could be replayed under another action; newer SDKs and our own clients can sign it).
    pub require_signed_action: bool,
}

impl Default for HttpSettings {
    fn default() -> HttpSettings {
        HttpSettings {
            workers: 1,
            body_limit: 4 * 1024 * 1024,
            body_timeout_secs: 30,
            buffered_bytes_max: 256 * 1024 * 1024,
            timestamp_skew_secs: 300,
            keep_alive_secs: 75,
            max_connections: 25_000,
            require_signed_action: false,
        }
    }
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl ServerConfig {
    pub fn load(path: &Path) -> Result<ServerConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let mut config = ServerConfig::parse(&text)
            .map_err(|message| ConfigError::Parse { path: path.into(), message })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config.validate().map_err(|message| ConfigError::Invalid { path: path.into(), message })?;
        Ok(config)
    }

    /// Parses the TOML text (paths stay as written).
    pub fn parse(text: &str) -> Result<ServerConfig, String> {
        toml::from_str(text).map_err(|error| error.to_string())
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        };
        if let Some(tls) = &mut self.tls {
            resolve(&mut tls.cert);
            resolve(&mut tls.key);
        }
        if let Some(world) = &mut self.world {
            resolve(world);
        }
        if let Some(dir) = &mut self.engine.data_dir {
            resolve(dir);
        }
    }

    /// Checks what TOML types cannot: distinct secret ids, non-empty secrets, known actions
    /// and valid quotas, runtime settings, webhooks.
    pub fn validate(&self) -> Result<(), String> {
        let mut ids = HashSet::new();
        for (id, key) in std::iter::once((&self.operator.secret_id, &self.operator.secret_key))
            .chain(self.keys.iter().map(|key| (&key.secret_id, &key.secret_key)))
        {
            if id.is_empty() || key.is_empty() {
                return Err("every secret_id and secret_key must be non-empty".into());
            }
            if !ids.insert(id) {
                return Err(format!("secret_id {id} appears twice"));
            }
        }
        if let Some(key) = self.keys.iter().find(|key| key.uin == 0) {
            return Err(format!("key {}: uin must be positive", key.secret_id));
        }
        self.quota_table()?;
        self.engine_config()?;
        let http = &self.http;
        if http.workers == 0
            || http.body_limit == 0
            || http.timestamp_skew_secs <= 0
            || http.max_connections == 0
        {
            return Err(
                "[http] workers, body_limit, timestamp_skew_secs and max_connections must be positive".into(),
            );
        }
        for (index, webhook) in self.webhooks.iter().enumerate() {
            webhook.validate().map_err(|message| format!("[[webhooks]] {}: {message}", index + 1))?;
        }
        self.faults()?;
        Ok(())
    }

    /// The `[[faults]]`, checked; the error names the fault (from 1) and its setting.
    pub fn faults(&self) -> Result<Vec<super::faults::Fault>, String> {
        if self.faults.len() > super::faults::FAULTS_MAX {
            return Err(format!(
                "[[faults]]: at most {} faults, not {}",
                super::faults::FAULTS_MAX,
                self.faults.len()
            ));
        }
        self.faults
            .iter()
            .enumerate()
            .map(|(index, fault)| {
                fault.check().map_err(|error| {
                    let setting = super::faults::snake_case(error.field);
                    let reason = error
                        .reason
                        .replace("Code, DelayMs and Drop (true)", "code, delay_ms and drop = true");
                    if error.combination {
                        format!("[[faults]] {}: {reason}", index + 1)
                    } else {
                        format!("[[faults]] {}: {setting}: {reason}", index + 1)
                    }
                })
            })
            .collect()
    }

    /// The documented quotas with this configuration's overrides.
    pub fn quota_table(&self) -> Result<QuotaTable, String> {
        let mut table = QuotaTable::documented();
        for (name, setting) in &self.quotas {
            let action =
                Action::from_name(name).ok_or_else(|| format!("[quotas]: no action is called {name}"))?;
            let quota = match setting {
                QuotaSetting::PerSecond(n) => {
                    Some(Quota::per_second(*n).map_err(|error| format!("[quotas] {name}: {error}"))?)
                }
                QuotaSetting::Word(word) if word == "none" => None,
                QuotaSetting::Word(word) => {
                    return Err(format!("[quotas] {name}: expected a number or \"none\", got {word:?}"))
                }
            };
            table.set(action, quota);
        }
        Ok(table)
    }

    pub fn engine_config(&self) -> Result<EngineConfig, String> {
        let settings = &self.engine;
        let mut config = EngineConfig { quotas: self.quota_table()?, ..EngineConfig::default() };
        if let Some(runtime) = &settings.runtime {
            config.runtime =
                runtime.parse::<RuntimeKind>().map_err(|error| format!("[engine] runtime: {error}"))?;
        }
        let positive = |name: &str, value: Option<usize>, slot: &mut usize| match value {
            Some(0) => Err(format!("[engine] {name} must be positive")),
            Some(value) => {
                *slot = value;
                Ok(())
            }
            None => Ok(()),
        };
        positive("workers", settings.workers, &mut config.workers)?;
        positive("mailbox_capacity", settings.mailbox_capacity, &mut config.mailbox_capacity)?;
        positive("resolved_capacity", settings.resolved_capacity, &mut config.resolved_capacity)?;
        positive("open_reservations_max", settings.open_reservations_max, &mut config.open_reservations_max)?;
        for (name, value) in [
            ("resolved_capacity", config.resolved_capacity),
            ("open_reservations_max", config.open_reservations_max),
        ] {
            if value > EngineConfig::LEDGER_RECORDS_MAX {
                return Err(format!("[engine] {name} is at most {}", EngineConfig::LEDGER_RECORDS_MAX));
            }
        }
        if let Some(ms) = settings.reservation_timeout_ms_max {
            if !(1000..=86_400_000).contains(&ms) || ms % 1000 != 0 {
                return Err(format!(
                    "[engine] reservation_timeout_ms_max: {ms} is not a whole number of seconds from 1000 to \
                     86400000"
                ));
            }
            config.reservation_timeout_ms_max = ms;
            config.reservation_timeout_ms_default = config.reservation_timeout_ms_default.min(ms);
        }
        if let Some(ms) = settings.reservation_timeout_ms_default {
            if !(1000..=config.reservation_timeout_ms_max).contains(&ms) || ms % 1000 != 0 {
                return Err(format!(
                    "[engine] reservation_timeout_ms_default: {ms} is not a whole number of seconds from \
                     1000 to {}",
                    config.reservation_timeout_ms_max
                ));
            }
            config.reservation_timeout_ms_default = ms;
        }
        if let Some(ms) = settings.resolved_retention_ms {
            if ms <= 0 {
                return Err("[engine] resolved_retention_ms must be positive".into());
            }
            config.resolved_retention_ms = ms;
        }
        config.escrow_partners = settings.escrow_partners.iter().map(|&uin| Uin(uin)).collect();
        if let Some(setting) = &settings.freezing_coefficient_default {
            let coefficient = setting
                .decimal()
                .map_err(|error| format!("[engine] freezing_coefficient_default: {error}"))?;
            crate::engine::check_coefficient(coefficient).map_err(|error| {
                let reason = match error.rejection() {
                    Some(Rejection::InvalidParameter { reason, .. }) => reason.clone(),
                    _ => error.to_string(),
                };
                format!("[engine] freezing_coefficient_default: {reason}")
            })?;
            config.freezing_coefficient_default = coefficient;
        }
        config.data_dir = settings.data_dir.clone();
        if let Some(fsync) = &settings.fsync {
            config.fsync = fsync.parse().map_err(|error| format!("[engine] fsync: {error}"))?;
        }
        for (name, value, slot, range) in [
            (
                "snapshot_bytes",
                settings.snapshot_bytes,
                &mut config.snapshot_bytes,
                EngineConfig::SNAPSHOT_BYTES_RANGE,
            ),
            (
                "segment_bytes",
                settings.segment_bytes,
                &mut config.segment_bytes,
                EngineConfig::SEGMENT_BYTES_RANGE,
            ),
        ] {
            match value {
                Some(bytes) if !range.contains(&bytes) => {
                    return Err(format!(
                        "[engine] {name} must be from {} to {} bytes, not {bytes}",
                        range.start(),
                        range.end()
                    ))
                }
                Some(bytes) => *slot = bytes,
                None => {}
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
listen = "127.0.0.1:8080"
[operator]
secret_id = "op"
secret_key = "op-key"
"#;

    #[test]
    fn minimal_and_full() {
        let config = ServerConfig::parse(MINIMAL).unwrap();
        config.validate().unwrap();
        assert_eq!(config.quota_table().unwrap(), QuotaTable::documented());
        // A section with only some settings keeps the others' defaults.
        let some = ServerConfig::parse(&format!("{MINIMAL}[http]\nbody_limit = 100\n[engine]\nworkers = 1"))
            .unwrap();
        assert_eq!((some.http.body_limit, some.http.workers, some.http.timestamp_skew_secs), (100, 1, 300));

        let full = format!(
            "{MINIMAL}{}",
            r#"
[[keys]]
secret_id = "r"
secret_key = "r-key"
uin = 3000000
[quotas]
CreatePurchase = 1000
ForceQN = "none"
[engine]
runtime = "actix"
workers = 3
[http]
workers = 2
body_limit = 1024
timestamp_skew_secs = 60
keep_alive_secs = 5
max_connections = 100
"#
        );
        let config = ServerConfig::parse(&full).unwrap();
        config.validate().unwrap();
        let table = config.quota_table().unwrap();
        assert_eq!(table.get(Action::CreatePurchase), Quota::per_second(1000).ok());
        assert_eq!(table.get(Action::ForceQN), None);
        let engine = config.engine_config().unwrap();
        assert_eq!((engine.runtime, engine.workers), (RuntimeKind::Actix, 3));
    }

    #[test]
    fn the_data_directory_and_fsync_policy() {
        let memory = ServerConfig::parse(MINIMAL).unwrap().engine_config().unwrap();
        assert_eq!((memory.data_dir, memory.fsync), (None, crate::journal::FsyncPolicy::Always));
        let mut config =
            ServerConfig::parse(&format!("{MINIMAL}[engine]\ndata_dir = \"data\"\nfsync = \"interval:50\""))
                .unwrap();
        config.resolve_paths(Path::new("/etc/partner-credit"));
        let engine = config.engine_config().unwrap();
        assert_eq!(engine.data_dir, Some(PathBuf::from("/etc/partner-credit/data")));
        assert_eq!(engine.fsync, crate::journal::FsyncPolicy::Interval(std::time::Duration::from_millis(50)));
        let wrong = ServerConfig::parse(&format!("{MINIMAL}[engine]\nfsync = \"sometimes\"")).unwrap();
        let error = wrong.engine_config().unwrap_err();
        assert!(error.starts_with("[engine] fsync:") && error.contains("sometimes"), "{error}");
    }

    #[test]
    fn snapshot_and_segment_sizes() {
        let defaults = EngineConfig::default();
        let memory = ServerConfig::parse(MINIMAL).unwrap().engine_config().unwrap();
        assert_eq!(
            (memory.snapshot_bytes, memory.segment_bytes),
            (defaults.snapshot_bytes, defaults.segment_bytes)
        );
        let config =
            ServerConfig::parse(&format!("{MINIMAL}[engine]\nsnapshot_bytes = 65536\nsegment_bytes = 4096"))
                .unwrap();
        let engine = config.engine_config().unwrap();
        assert_eq!((engine.snapshot_bytes, engine.segment_bytes), (65536, 4096));
        for (name, range) in [
            ("snapshot_bytes", EngineConfig::SNAPSHOT_BYTES_RANGE),
            ("segment_bytes", EngineConfig::SEGMENT_BYTES_RANGE),
        ] {
            for bad in [0, 4095, range.end() + 1] {
                let config = ServerConfig::parse(&format!("{MINIMAL}[engine]\n{name} = {bad}")).unwrap();
                assert_eq!(
                    config.engine_config().unwrap_err(),
                    format!("[engine] {name} must be from 4096 to {} bytes, not {bad}", range.end())
                );
            }
        }
    }

    #[test]
    fn engine_settings_for_rehearsals() {
        let config = ServerConfig::parse(MINIMAL).unwrap();
        let engine = config.engine_config().unwrap();
        assert!(!config.engine.adjustable_clock);
        assert_eq!(engine.freezing_coefficient_default, rust_decimal::Decimal::ONE);
        assert_eq!(
            (engine.reservation_timeout_ms_max, engine.reservation_timeout_ms_default),
            (86_400_000, 60_000)
        );
        for (setting, expected) in [("0.3", "0.3"), ("0", "0"), ("1", "1"), ("\"0.12345678\"", "0.12345678")]
        {
            let text = format!(
                "{MINIMAL}[engine]\nfreezing_coefficient_default = {setting}\nadjustable_clock = true"
            );
            let config = ServerConfig::parse(&text).unwrap();
            config.validate().unwrap();
            assert!(config.engine.adjustable_clock);
            assert_eq!(config.engine_config().unwrap().freezing_coefficient_default.to_string(), expected);
        }
        // A small maximum takes the default reservation timeout down with it.
        let small =
            ServerConfig::parse(&format!("{MINIMAL}[engine]\nreservation_timeout_ms_max = 2000")).unwrap();
        let engine = small.engine_config().unwrap();
        assert_eq!((engine.reservation_timeout_ms_max, engine.reservation_timeout_ms_default), (2000, 2000));
        let cases = [
            (
                "freezing_coefficient_default = 1.5",
                "[engine] freezing_coefficient_default: 1.5 is outside 0 to 1",
            ),
            ("freezing_coefficient_default = -0.1", "is outside 0 to 1"),
            ("freezing_coefficient_default = \"0.123456789\"", "has more than 8 decimals"),
            ("freezing_coefficient_default = \"half\"", "\"half\" is not a decimal"),
            ("reservation_timeout_ms_max = 500", "reservation_timeout_ms_max: 500 is not a whole number"),
            ("reservation_timeout_ms_max = 1500", "reservation_timeout_ms_max: 1500"),
            (
                "reservation_timeout_ms_max = 2000\nreservation_timeout_ms_default = 3000",
                "reservation_timeout_ms_default: 3000 is not a whole number of seconds from 1000 to 2000",
            ),
            ("adjustable_clock = \"yes\"", "adjustable_clock"),
        ];
        for (body, expected) in cases {
            let text = format!("{MINIMAL}[engine]\n{body}");
            let error = ServerConfig::parse(&text).and_then(|config| config.validate()).unwrap_err();
            assert!(error.contains(expected), "{body:?}: {error}");
        }
    }

    #[test]
    fn faults_and_admin_settings() {
        let config = ServerConfig::parse(MINIMAL).unwrap();
        assert!(config.faults().unwrap().is_empty());
        assert!(config.admin.metrics && config.admin.listen.is_none());
        let text = format!(
            "{MINIMAL}{}",
            r#"
[[faults]]
action = "CreatePurchase"
caller_uin = 1000201
probability = 0.3
code = "InternalError"
seed = 7
[[faults]]
action = "*"
probability = 1
delay_ms = 300
[admin]
metrics = false
listen = "127.0.0.1:9090"
"#
        );
        let config = ServerConfig::parse(&text).unwrap();
        config.validate().unwrap();
        let faults = config.faults().unwrap();
        assert_eq!(faults.len(), 2);
        assert_eq!(faults[0].effect, super::super::faults::Effect::Error("InternalError"));
        assert_eq!((faults[0].seed, faults[0].caller_uin), (7, Some(Uin(1000201))));
        assert_eq!(
            faults[1].effect,
            super::super::faults::Effect::Delay(std::time::Duration::from_millis(300))
        );
        assert!(!config.admin.metrics);
        assert_eq!(config.admin.listen, "127.0.0.1:9090".parse().ok());
    }

    #[test]
    fn webhooks_have_defaults_and_limits() {
        let config = ServerConfig::parse(MINIMAL).unwrap();
        assert!(config.webhooks.is_empty());
        let two = format!(
            "{MINIMAL}{}",
            r#"
[[webhooks]]
url = "http://127.0.0.1:9000/credit"
secret = "s1"
[[webhooks]]
url = "http://relay.internal/credit"
secret = "s2"
attempts = 20
queue = 1000000
timeout_ms = 250
"#
        );
        let config = ServerConfig::parse(&two).unwrap();
        config.validate().unwrap();
        let settings: Vec<_> = config
            .webhooks
            .iter()
            .map(|hook| (hook.url.as_str(), hook.attempts, hook.queue, hook.timeout_ms))
            .collect();
        assert_eq!(
            settings,
            [
                ("http://127.0.0.1:9000/credit", 5, 10_000, 5000),
                ("http://relay.internal/credit", 20, 1_000_000, 250)
            ]
        );
    }

    /// The minimal configuration with one `[[webhooks]]` entry of `body`.
    fn webhook(body: &str) -> String {
        format!("{MINIMAL}[[webhooks]]\n{body}\n")
    }

    #[test]
    fn bad_configurations_say_what_is_wrong() {
        let cases = [
            (
                "listen = \"nowhere\"\n[operator]\nsecret_id = \"a\"\nsecret_key = \"b\"",
                "invalid socket address",
            ),
            ("listen = \"127.0.0.1:1\"", "missing field `operator`"),
            (&format!("{MINIMAL}colour = 1"), "unknown field `colour`"),
            (&format!("{MINIMAL}[quotas]\nFly = 1"), "no action is called Fly"),
            (&format!("{MINIMAL}[quotas]\nForceQN = 0"), "a quota is 1 to"),
            (&format!("{MINIMAL}[quotas]\nForceQN = \"lots\""), "expected a number or \"none\""),
            (&format!("{MINIMAL}[engine]\nruntime = \"threads\""), "runtime"),
            (&format!("{MINIMAL}[engine]\nworkers = 0"), "workers must be positive"),
            (
                &format!("{MINIMAL}[engine]\nresolved_capacity = 100000001"),
                "resolved_capacity is at most 100000000",
            ),
            (&format!("{MINIMAL}[http]\nworkers = 0"), "must be positive"),
            (
                &format!("{MINIMAL}[[keys]]\nsecret_id = \"op\"\nsecret_key = \"x\"\nuin = 5"),
                "op appears twice",
            ),
            (&format!("{MINIMAL}[[keys]]\nsecret_id = \"k\"\nsecret_key = \"\"\nuin = 5"), "non-empty"),
            (
                &webhook("url = \"https://example.com/h\"\nsecret = \"s\""),
                "[[webhooks]] 1: url https://example.com/h: https is not offered",
            ),
            (
                &webhook("url = \"example.com/h\"\nsecret = \"s\""),
                "[[webhooks]] 1: url example.com/h: expected http://",
            ),
            (&webhook("url = \"http://example.com:0/h\"\nsecret = \"s\""), "port \"0\" is not 1 to 65535"),
            (
                &webhook("url = \"http://example.com/h\"\nsecret = \"\""),
                "[[webhooks]] 1: secret must be non-empty",
            ),
            (&webhook("url = \"http://example.com/h\""), "missing field `secret`"),
            (&webhook("secret = \"s\""), "missing field `url`"),
            (
                &webhook("url = \"http://e/h\"\nsecret = \"s\"\nattempts = 0"),
                "attempts must be 1 to 20, not 0",
            ),
            (
                &webhook("url = \"http://e/h\"\nsecret = \"s\"\nattempts = 21"),
                "attempts must be 1 to 20, not 21",
            ),
            (
                &webhook("url = \"http://e/h\"\nsecret = \"s\"\nqueue = 0"),
                "queue must be 1 to 1000000, not 0",
            ),
            (&webhook("url = \"http://e/h\"\nsecret = \"s\"\nqueue = 1000001"), "queue must be 1 to 1000000"),
            (
                &webhook("url = \"http://e/h\"\nsecret = \"s\"\ntimeout_ms = 0"),
                "timeout_ms must be 1 to 600000, not 0",
            ),
            (&webhook("url = \"http://e/h\"\nsecret = \"s\"\nretries = 3"), "unknown field `retries`"),
            (
                &format!("{MINIMAL}[[faults]]\naction = \"Fly\"\nprobability = 1\ncode = \"InternalError\""),
                "[[faults]] 1: action: \"Fly\" is not an action",
            ),
            (
                &format!("{MINIMAL}[[faults]]\naction = \"*\"\nprobability = 2.0\ncode = \"InternalError\""),
                "[[faults]] 1: probability: 2 is outside 0 to 1",
            ),
            (
                &format!("{MINIMAL}[[faults]]\naction = \"*\"\nprobability = 0.5\ncode = \"Oops\""),
                "[[faults]] 1: code: \"Oops\" is not an error code",
            ),
            (
                &format!("{MINIMAL}[[faults]]\naction = \"*\"\nprobability = 0.5\ndelay_ms = 5\ndrop = true"),
                "[[faults]] 1: a fault has exactly one of code, delay_ms and drop = true, not 2",
            ),
            (
                &format!("{MINIMAL}[[faults]]\naction = \"*\"\nprobability = 0.5\nlatency = 5"),
                "unknown field `latency`",
            ),
            (&format!("{MINIMAL}[admin]\nmetrics = \"yes\""), "metrics"),
            (
                &format!(
                    "{}[[webhooks]]\nurl = \"http://e/2\"\nsecret = \"s\"\nattempts = 99",
                    webhook("url = \"http://e/1\"\nsecret = \"s\"")
                ),
                "[[webhooks]] 2: attempts must be 1 to 20",
            ),
        ];
        for (text, expected) in cases {
            let error = ServerConfig::parse(text).and_then(|config| config.validate()).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }
}
