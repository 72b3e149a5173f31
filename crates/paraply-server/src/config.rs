//! Settings: flags and environment variables for the essentials, a TOML file for the
//! rest. A bad setting stops start-up with a message naming it; nothing falls back.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://paraply-data/paraply.db";

/// The longest `[audit] retention_years` accepted: beyond it a typo is likelier than intent.
pub const MAX_RETENTION_YEARS: u32 = 100;

#[derive(Debug, Parser)]
#[command(
    name = "paraply",
    version,
    about = "Paraply: the patientkontrakt as a FHIR R4 server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the FHIR API.
    Serve(Settings),
    /// Serve with demo data loaded (idempotent: loading twice changes nothing).
    Demo(Settings),
    /// Bring the database's search index up to date with this version's search parameters
    /// and exit (`serve` and `demo` do the same on start).
    Reindex(ReindexSettings),
    /// Generate a synthetic Swedish population and load it into a running Paraply over
    /// its FHIR API (or write it as NDJSON files).
    Synth(paraply_synth::SynthArgs),
    /// The access log: check its hash chains, or purge entries older than the retention.
    #[command(subcommand)]
    Audit(AuditCommand),
}

/// `paraply audit …`, on the database `serve` uses (same flags, variables and file).
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk every hash chain of the access log; print the counts and OK, or the first
    /// broken link, and exit non-zero if there is one.
    Verify(Settings),
    /// Delete the access-log entries older than `[audit] retention_years` (default 5),
    /// record that the purge ran, and log it. Never run automatically.
    Purge(Settings),
}

/// The settings `serve` and `demo` share.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "PARAPLY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Database URL: sqlite://path (created and migrated on start) or postgres://…
    #[arg(long = "database", env = "PARAPLY_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// A TOML file with further settings (see README).
    #[arg(long, env = "PARAPLY_CONFIG")]
    pub config: Option<PathBuf>,
    /// `oidc`: every FHIR request needs a bearer token from a trusted issuer (the TOML
    /// file's `[[issuer]]`s). `none`: no logins and no access rules — development only,
    /// refused on any address but loopback.
    #[arg(long, env = "PARAPLY_AUTH", value_enum, default_value_t = AuthMode::Oidc)]
    pub auth: AuthMode,
    /// The FHIR base URL as clients reach it (https, or http on loopback), for links and
    /// `Location`; wins over the file's `public_base_url`. Default: http://<listen>/fhir.
    #[arg(long, env = "PARAPLY_PUBLIC_BASE_URL")]
    pub public_base_url: Option<String>,
}

/// The settings of `reindex`.
#[derive(Debug, Clone, Args)]
pub struct ReindexSettings {
    /// Database URL: sqlite://path or postgres://…
    #[arg(long = "database", env = "PARAPLY_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
}

/// Whether FHIR requests must carry a bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    Oidc,
    None,
}

/// Settings read from the TOML file; unknown keys are errors.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The FHIR base URL as clients reach it (`https://paraply.example.se/fhir`), which
    /// every link and `Location` starts with. `None`: `http://<listen address>/fhir`.
    pub public_base_url: Option<String>,
    /// Database connections per pool (readers; SQLite writes use one connection).
    pub database_pool_size: u32,
    /// Trusted OpenID Connect issuers (`[[issuer]]` tables).
    pub issuer: Vec<paraply_auth::TrustedIssuer>,
    /// The access rules' settings (`[access]`).
    pub access: AccessConfig,
    /// The portal's login (`[portal]`): its OpenID provider and client. Without it the
    /// `/auth/*` routes are not served (`paraply demo` uses its demo provider).
    pub portal: Option<paraply_portal::PortalSettings>,
    /// The patientkontrakt's rules (`[patientkontrakt]`).
    pub patientkontrakt: PatientkontraktConfig,
    /// How the database keeps what it has acknowledged (`[storage]`).
    pub storage: StorageConfig,
    /// The access log (`[audit]`).
    pub audit: AuditConfig,
    /// Subscription notifications (`[subscriptions]`).
    pub subscriptions: SubscriptionsConfig,
    /// Bulk export (`[export]`).
    pub export: ExportConfig,
}

/// The longest `[export] expire_minutes` accepted (a week): files are views over the data,
/// not copies, but a job kept longer is likelier a typo than a need.
pub const MAX_EXPORT_EXPIRE_MINUTES: u32 = 7 * 24 * 60;

/// `[export]`: how long a bulk export's job and files stay (see paraply-export).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportConfig {
    /// Minutes after the kick-off until the job, its status URL and its files are gone.
    pub expire_minutes: u32,
}

impl Default for ExportConfig {
    fn default() -> Self {
        let defaults = paraply_export::ExportSettings::default();
        ExportConfig {
            expire_minutes: u32::try_from(defaults.expire.as_secs() / 60).unwrap_or(60),
        }
    }
}

impl ExportConfig {
    pub fn settings(&self) -> paraply_export::ExportSettings {
        paraply_export::ExportSettings {
            expire: std::time::Duration::from_secs(u64::from(self.expire_minutes) * 60),
            ..paraply_export::ExportSettings::default()
        }
    }
}

/// `[subscriptions]`: where and how notifications are delivered (see paraply-notify).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubscriptionsConfig {
    /// Host names `https` endpoints may name. Empty (the default): nowhere but loopback,
    /// and loopback only while the server listens on loopback.
    pub allowed_hosts: Vec<String>,
    /// Failed deliveries in a row after which a subscription is turned `off`.
    pub max_failures: u32,
    /// Seconds one delivery may take.
    pub timeout_seconds: u64,
    /// Milliseconds to wait after a first failure; doubled after each further one.
    pub retry_base_ms: u64,
}

impl Default for SubscriptionsConfig {
    fn default() -> Self {
        let defaults = paraply_notify::NotifySettings::default();
        SubscriptionsConfig {
            allowed_hosts: Vec::new(),
            max_failures: u32::try_from(defaults.max_failures).unwrap_or(10),
            timeout_seconds: defaults.timeout.as_secs(),
            retry_base_ms: u64::try_from(defaults.retry_base.as_millis()).unwrap_or(1000),
        }
    }
}

impl SubscriptionsConfig {
    /// Where endpoints may be, for a server listening on `listen`.
    pub fn policy(&self, listen: SocketAddr) -> paraply_notify::EndpointPolicy {
        paraply_notify::EndpointPolicy {
            allowed_hosts: self
                .allowed_hosts
                .iter()
                .map(|host| host.to_ascii_lowercase())
                .collect(),
            loopback: listen.ip().is_loopback(),
        }
    }

    pub fn settings(&self, listen: SocketAddr) -> paraply_notify::NotifySettings {
        paraply_notify::NotifySettings {
            policy: std::sync::Arc::new(self.policy(listen)),
            max_failures: i64::from(self.max_failures),
            timeout: std::time::Duration::from_secs(self.timeout_seconds),
            retry_base: std::time::Duration::from_millis(self.retry_base_ms),
            ..paraply_notify::NotifySettings::default()
        }
    }
}

/// `[audit]`: how long the access log is kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Years `paraply audit purge` keeps entries for; at least 5, the law's minimum
    /// (checked on start).
    pub retention_years: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention_years: paraply_core::MIN_RETENTION_YEARS,
        }
    }
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            max_body_bytes: 8 * 1024 * 1024,
            public_base_url: None,
            database_pool_size: 8,
            issuer: Vec::new(),
            access: AccessConfig::default(),
            portal: None,
            patientkontrakt: PatientkontraktConfig::default(),
            storage: StorageConfig::default(),
            audit: AuditConfig::default(),
            subscriptions: SubscriptionsConfig::default(),
            export: ExportConfig::default(),
        }
    }
}

/// `[storage]`: durability against speed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// SQLite's `PRAGMA synchronous`: `full` (the default) syncs the WAL at every commit, so
    /// a write answered 201 survives power loss; `normal` syncs only at checkpoints and may
    /// lose the last acknowledged writes on power loss or an OS crash. Ignored on PostgreSQL,
    /// whose `synchronous_commit` stays the server's (by default `on`).
    #[serde(deserialize_with = "sqlite_synchronous")]
    pub sqlite_synchronous: paraply_store_sql::Synchronous,
    /// SQLite: resource writes answer 503 once the database file (with its write-ahead log)
    /// reaches this many MiB, before the disk itself is full; the access log may still grow,
    /// so reads go on. Set it below the disk's free space. Absent: only the disk limits it.
    #[serde(deserialize_with = "sqlite_max_size_mb")]
    pub sqlite_max_size_mb: Option<u64>,
}

fn sqlite_max_size_mb<'de, D>(deserializer: D) -> Result<Option<u64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    match u64::deserialize(deserializer)? {
        0 => Err(serde::de::Error::custom(
            "[storage] sqlite_max_size_mb: must be at least 1",
        )),
        mb => Ok(Some(mb)),
    }
}

fn sqlite_synchronous<'de, D>(deserializer: D) -> Result<paraply_store_sql::Synchronous, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let value = String::deserialize(deserializer)?;
    value.parse().map_err(|reason| {
        serde::de::Error::custom(format!("[storage] sqlite_synchronous: {reason}"))
    })
}

/// `[patientkontrakt]`: the limits of DOMAIN.md §4.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PatientkontraktConfig {
    /// I2: the most active fasta vårdkontakter (roles 1 and 4) one patient may have; a
    /// region's journal allows nine.
    pub max_fasta_vardkontakter: usize,
    /// How many minutes `Appointment/$hold` keeps a time for a patient.
    pub hold_minutes: u32,
    /// The follow-up reports' small-cell threshold: counts below it (and above 0) are
    /// masked in a summary `MeasureReport`.
    pub followup_min_cell: u64,
}

impl Default for PatientkontraktConfig {
    fn default() -> Self {
        let defaults = paraply_patientkontrakt::RuleSettings::default();
        PatientkontraktConfig {
            max_fasta_vardkontakter: defaults.max_fasta_vardkontakter,
            hold_minutes: defaults.hold_minutes,
            followup_min_cell: defaults.min_cell,
        }
    }
}

impl PatientkontraktConfig {
    pub fn settings(&self) -> paraply_patientkontrakt::RuleSettings {
        paraply_patientkontrakt::RuleSettings {
            max_fasta_vardkontakter: self.max_fasta_vardkontakter,
            hold_minutes: self.hold_minutes,
            min_cell: self.followup_min_cell,
        }
    }
}

/// `[access]`: see docs/ACCESS.md.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// A staff member's first login at a registered unit of the care provider their issuer
    /// speaks for creates their Practitioner and PractitionerRole; `false` refuses such a
    /// login until the role is registered.
    pub create_practitioner_role_on_first_login: bool,
}

impl Default for AccessConfig {
    fn default() -> Self {
        let defaults = paraply_core::AccessSettings::default();
        AccessConfig {
            create_practitioner_role_on_first_login: defaults
                .create_practitioner_role_on_first_login,
        }
    }
}

impl AccessConfig {
    pub fn settings(&self) -> paraply_core::AccessSettings {
        paraply_core::AccessSettings {
            create_practitioner_role_on_first_login: self.create_practitioner_role_on_first_login,
        }
    }
}

/// Everything the server needs, checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    pub auth: AuthMode,
    pub file: FileConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--listen / PARAPLY_LISTEN: '{value}' is not an address like 127.0.0.1:8080")]
    Listen { value: String },
    #[error(
        "--database / PARAPLY_DATABASE_URL: '{scheme}' is not a supported database (use sqlite://… or postgres://…)"
    )]
    DatabaseScheme { scheme: String },
    #[error("--config / PARAPLY_CONFIG: cannot read {path}: {reason}")]
    ConfigFile { path: String, reason: String },
    #[error("--config / PARAPLY_CONFIG: {path}: {reason}")]
    ConfigValue { path: String, reason: String },
    #[error(
        "--auth / PARAPLY_AUTH: 'none' (no logins, no access rules) is only allowed on a loopback address (127.0.0.0/8 or ::1), not on --listen {listen}"
    )]
    AuthNoneNotLoopback { listen: SocketAddr },
    #[error(
        "public_base_url (--public-base-url / PARAPLY_PUBLIC_BASE_URL / the config file's public_base_url): '{value}' {reason}"
    )]
    PublicBaseUrl { value: String, reason: &'static str },
    #[error(
        "--auth / PARAPLY_AUTH: 'oidc' (the default) needs at least one trusted issuer: add an [[issuer]] table to the --config / PARAPLY_CONFIG file (see README), or use --auth none on a loopback address for development"
    )]
    NoIssuers,
}

impl Config {
    /// The FHIR base URL links are built from: the setting, else the address the server
    /// is bound to (which knows the port when `--listen` asked for port 0).
    pub fn public_base_url(&self, bound: SocketAddr) -> String {
        self.file
            .public_base_url
            .clone()
            .unwrap_or_else(|| format!("http://{bound}/fhir"))
    }

    /// The settings of `paraply serve`: with `--auth oidc`, the file must name an issuer.
    pub fn from_settings(settings: &Settings) -> Result<Config, ConfigError> {
        let config = Self::load(settings)?;
        if config.auth == AuthMode::Oidc && config.file.issuer.is_empty() {
            return Err(ConfigError::NoIssuers);
        }
        Ok(config)
    }

    /// The settings of `paraply audit`: the database and file of `serve`, no issuer needed.
    pub fn for_audit(settings: &Settings) -> Result<Config, ConfigError> {
        Self::load(settings)
    }

    /// The settings of `paraply demo`, which trusts its own demo issuer besides any in the file.
    pub fn for_demo(settings: &Settings) -> Result<Config, ConfigError> {
        Self::load(settings)
    }

    fn load(settings: &Settings) -> Result<Config, ConfigError> {
        let listen = settings
            .listen
            .parse::<SocketAddr>()
            .map_err(|_| ConfigError::Listen {
                value: settings.listen.clone(),
            })?;
        let scheme = settings
            .database_url
            .split_once(':')
            .map_or(settings.database_url.as_str(), |(scheme, _)| scheme);
        if !matches!(scheme, "sqlite" | "postgres" | "postgresql") {
            return Err(ConfigError::DatabaseScheme {
                scheme: scheme.to_owned(),
            });
        }
        let mut file = match &settings.config {
            None => FileConfig::default(),
            Some(path) => {
                let shown = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::ConfigFile {
                    path: shown.clone(),
                    reason: e.to_string(),
                })?;
                let file: FileConfig =
                    toml::from_str(&text).map_err(|e| ConfigError::ConfigValue {
                        path: shown.clone(),
                        reason: e.to_string(),
                    })?;
                if file.max_body_bytes == 0 || file.database_pool_size == 0 {
                    return Err(ConfigError::ConfigValue {
                        path: shown,
                        reason: "max_body_bytes and database_pool_size must be at least 1".into(),
                    });
                }
                if !(paraply_core::MIN_RETENTION_YEARS..=MAX_RETENTION_YEARS)
                    .contains(&file.audit.retention_years)
                {
                    return Err(ConfigError::ConfigValue {
                        path: shown,
                        reason: format!(
                            "[audit] retention_years must be from {} (the law's minimum) to {MAX_RETENTION_YEARS}",
                            paraply_core::MIN_RETENTION_YEARS
                        ),
                    });
                }
                if !(1..=MAX_EXPORT_EXPIRE_MINUTES).contains(&file.export.expire_minutes) {
                    return Err(ConfigError::ConfigValue {
                        path: shown,
                        reason: format!(
                            "[export] expire_minutes must be from 1 to {MAX_EXPORT_EXPIRE_MINUTES}"
                        ),
                    });
                }
                let subscriptions = &file.subscriptions;
                if subscriptions.max_failures == 0
                    || subscriptions.timeout_seconds == 0
                    || subscriptions.retry_base_ms == 0
                {
                    return Err(ConfigError::ConfigValue {
                        path: shown,
                        reason: "[subscriptions] max_failures, timeout_seconds and retry_base_ms must be at least 1".into(),
                    });
                }
                if file.patientkontrakt.max_fasta_vardkontakter == 0 {
                    return Err(ConfigError::ConfigValue {
                        path: shown,
                        reason: "[patientkontrakt] max_fasta_vardkontakter must be at least 1"
                            .into(),
                    });
                }
                if file.patientkontrakt.hold_minutes == 0 {
                    return Err(ConfigError::ConfigValue {
                        path: shown,
                        reason: "[patientkontrakt] hold_minutes must be at least 1".into(),
                    });
                }
                if file.patientkontrakt.followup_min_cell == 0 {
                    return Err(ConfigError::ConfigValue {
                        path: shown,
                        reason: "[patientkontrakt] followup_min_cell must be at least 1".into(),
                    });
                }
                file
            }
        };
        if let Some(value) = settings
            .public_base_url
            .as_ref()
            .or(file.public_base_url.as_ref())
        {
            file.public_base_url = Some(public_base_url(value)?);
        }
        if settings.auth == AuthMode::None && !listen.ip().is_loopback() {
            return Err(ConfigError::AuthNoneNotLoopback { listen });
        }
        Ok(Config {
            listen,
            database_url: settings.database_url.clone(),
            auth: settings.auth,
            file,
        })
    }
}

/// A public base URL, checked like the portal's `public_url`: absolute, https (plain http
/// only on loopback, where nothing crosses a network), without credentials, query or
/// fragment. Returned without a trailing slash.
fn public_base_url(value: &str) -> Result<String, ConfigError> {
    let refuse = |reason| ConfigError::PublicBaseUrl {
        value: value.to_owned(),
        reason,
    };
    let url = url::Url::parse(value).map_err(|_| refuse("is not an absolute URL"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(refuse("has no host")),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => return Err(refuse("must use https (plain http only on loopback)")),
        _ => return Err(refuse("must be an http(s) URL")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("must not carry credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(refuse("must not have a query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            listen: "127.0.0.1:0".into(),
            database_url: DEFAULT_DATABASE_URL.into(),
            config: None,
            auth: AuthMode::None,
            public_base_url: None,
        }
    }

    #[test]
    fn public_base_url_is_https_or_loopback_http() {
        for (given, kept) in [
            (
                "https://fhir.example.se/fhir/",
                "https://fhir.example.se/fhir",
            ),
            ("http://127.0.0.1:8080/fhir", "http://127.0.0.1:8080/fhir"),
            ("http://localhost:8080/fhir", "http://localhost:8080/fhir"),
            ("http://[::1]:8080/fhir", "http://[::1]:8080/fhir"),
        ] {
            let mut s = settings();
            s.public_base_url = Some(given.into());
            let config = Config::from_settings(&s).unwrap();
            assert_eq!(config.file.public_base_url.as_deref(), Some(kept));
        }
        for refused in [
            "fhir.example.se/fhir",
            "/fhir",
            "http://fhir.example.se/fhir",
            "ftp://fhir.example.se/fhir",
            "https://user:pw@fhir.example.se/fhir",
            "https://fhir.example.se/fhir?x=1",
        ] {
            let mut s = settings();
            s.public_base_url = Some(refused.into());
            let message = Config::from_settings(&s).unwrap_err().to_string();
            assert!(
                message.contains("PARAPLY_PUBLIC_BASE_URL") && message.contains(refused),
                "{message}"
            );
        }
    }

    #[test]
    fn public_base_url_defaults_to_the_bound_address() {
        let config = Config::from_settings(&settings()).unwrap();
        let bound: SocketAddr = "127.0.0.1:4711".parse().unwrap();
        assert_eq!(config.public_base_url(bound), "http://127.0.0.1:4711/fhir");
    }

    #[test]
    fn bad_settings_name_themselves() {
        let mut s = settings();
        s.listen = "localhost".into();
        assert!(
            Config::from_settings(&s)
                .unwrap_err()
                .to_string()
                .contains("PARAPLY_LISTEN")
        );
        let mut s = settings();
        s.database_url = "mysql://x".into();
        assert!(
            Config::from_settings(&s)
                .unwrap_err()
                .to_string()
                .contains("PARAPLY_DATABASE_URL")
        );
        let mut s = settings();
        s.config = Some("/nonexistent/paraply.toml".into());
        assert!(
            Config::from_settings(&s)
                .unwrap_err()
                .to_string()
                .contains("PARAPLY_CONFIG")
        );
    }

    #[test]
    fn auth_none_only_on_loopback() {
        for ok in ["127.0.0.1:8080", "127.8.9.10:1", "[::1]:8080"] {
            let mut s = settings();
            s.listen = ok.into();
            assert!(Config::from_settings(&s).is_ok(), "{ok}");
        }
        for refused in ["0.0.0.0:8080", "192.168.1.5:8080", "[::]:8080"] {
            let mut s = settings();
            s.listen = refused.into();
            let message = Config::from_settings(&s).unwrap_err().to_string();
            assert!(
                message.contains("PARAPLY_AUTH") && message.contains("loopback"),
                "{message}"
            );
            assert!(Config::for_demo(&s).is_err(), "{refused}");
        }
    }

    #[test]
    fn oidc_without_issuers_is_refused_except_in_the_demo() {
        let mut s = settings();
        s.auth = AuthMode::Oidc;
        s.listen = "0.0.0.0:8080".into();
        let message = Config::from_settings(&s).unwrap_err().to_string();
        assert!(message.contains("[[issuer]]") && message.contains("PARAPLY_AUTH"));
        assert!(Config::for_demo(&s).is_ok());
    }

    #[test]
    fn the_compose_files_settings_trust_both_keycloak_realms() {
        let text = include_str!("../../../deploy/paraply-keycloak.toml");
        let file: FileConfig = toml::from_str(text).unwrap();
        let kinds: Vec<_> = file.issuer.iter().map(|i| i.kind).collect();
        assert_eq!(
            kinds,
            [
                paraply_auth::IssuerKind::Citizen,
                paraply_auth::IssuerKind::Staff
            ]
        );
        for name in ["paraply-citizen-realm.json", "paraply-staff-realm.json"] {
            let path = format!(
                "{}/../../deploy/keycloak/{name}",
                env!("CARGO_MANIFEST_DIR")
            );
            let realm: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let issuer = format!(
                "http://keycloak:8180/realms/{}",
                realm["realm"].as_str().unwrap()
            );
            assert!(file.issuer.iter().any(|i| i.issuer == issuer), "{issuer}");
            assert!(
                realm.to_string().contains("http://localhost:8080/fhir"),
                "{name}: audience"
            );
        }
    }

    #[test]
    fn sqlite_max_size_is_unlimited_unless_set_and_zero_names_the_setting() {
        assert_eq!(FileConfig::default().storage.sqlite_max_size_mb, None);
        let parsed: FileConfig = toml::from_str("[storage]\nsqlite_max_size_mb = 512").unwrap();
        assert_eq!(parsed.storage.sqlite_max_size_mb, Some(512));
        let error = toml::from_str::<FileConfig>("[storage]\nsqlite_max_size_mb = 0")
            .unwrap_err()
            .to_string();
        assert!(error.contains("sqlite_max_size_mb"), "{error}");
    }

    #[test]
    fn sqlite_synchronous_is_full_unless_set_and_unknown_values_name_the_setting() {
        use paraply_store_sql::Synchronous;
        assert_eq!(
            FileConfig::default().storage.sqlite_synchronous,
            Synchronous::Full
        );
        let parsed: FileConfig =
            toml::from_str("[storage]\nsqlite_synchronous = \"normal\"").unwrap();
        assert_eq!(parsed.storage.sqlite_synchronous, Synchronous::Normal);
        let message = toml::from_str::<FileConfig>("[storage]\nsqlite_synchronous = \"off\"")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("[storage] sqlite_synchronous") && message.contains("'off'"),
            "{message}"
        );
    }

    #[test]
    fn unknown_config_keys_are_refused() {
        assert!(toml::from_str::<FileConfig>("max_body_byte = 5").is_err());
        let parsed: FileConfig = toml::from_str("max_body_bytes = 5").unwrap();
        assert_eq!(parsed.max_body_bytes, 5);
        assert_eq!(
            parsed.database_pool_size,
            FileConfig::default().database_pool_size
        );
    }

    #[test]
    fn export_expiry_is_an_hour_unless_set_and_nonsense_stops_startup() {
        assert_eq!(FileConfig::default().export.expire_minutes, 60);
        let dir = std::env::temp_dir().join(format!("paraply-export-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let cases = [
            ("1", true),
            ("1440", true),
            ("10080", true),
            ("0", false),
            ("10081", false),
            ("-5", false),
            ("\"an hour\"", false),
        ];
        for (i, (value, accepted)) in cases.into_iter().enumerate() {
            let path = dir.join(format!("{i}.toml"));
            std::fs::write(&path, format!("[export]\nexpire_minutes = {value}\n")).unwrap();
            let mut s = settings();
            s.config = Some(path);
            match Config::for_audit(&s) {
                Ok(config) => {
                    assert!(accepted, "{value} was accepted");
                    assert_eq!(config.file.export.expire_minutes.to_string(), value);
                }
                Err(error) => {
                    assert!(!accepted, "{value}: {error}");
                    assert!(error.to_string().contains("expire_minutes"), "{error}");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn audit_retention_is_five_years_unless_set_and_less_stops_startup() {
        assert_eq!(FileConfig::default().audit.retention_years, 5);
        let dir = std::env::temp_dir().join(format!("paraply-audit-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let cases = [
            ("10", true),
            ("5", true),
            ("4", false),
            ("0", false),
            ("101", false),
            ("\"five\"", false),
        ];
        for (i, (value, accepted)) in cases.into_iter().enumerate() {
            let path = dir.join(format!("{i}.toml"));
            std::fs::write(&path, format!("[audit]\nretention_years = {value}\n")).unwrap();
            let mut s = settings();
            s.config = Some(path);
            match Config::for_audit(&s) {
                Ok(config) => {
                    assert!(accepted, "{value} was accepted");
                    assert_eq!(config.file.audit.retention_years.to_string(), value);
                }
                Err(error) => {
                    assert!(!accepted, "{value}: {error}");
                    assert!(error.to_string().contains("retention_years"), "{error}");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
