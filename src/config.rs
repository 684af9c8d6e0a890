//! Configuration: defaults, then a TOML file, then `PODIUM_*` environment variables.
//!
//! Nested keys use `__` in the environment: `xmpp.secret` is `PODIUM_XMPP__SECRET`. Every key is
//! documented in `config/podium.toml`. The component secret is a [`Secret`], which never prints.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use xmpp_parsers::jid::BareJid;

use crate::media::MediaSet;

/// The prefix of every environment variable podium reads.
pub const ENV_PREFIX: &str = "PODIUM_";

/// Everything podium needs to run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The link to Prosody.
    pub xmpp: XmppConfig,
    /// Where the rules and the audit log live.
    pub database: DatabaseConfig,
    /// How rules combine.
    pub rules: RulesConfig,
    /// Logging.
    pub log: LogConfig,
}

/// `[xmpp]`: the XEP-0114 component link.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct XmppConfig {
    /// Prosody's component interface.
    pub host: String,
    /// Prosody's component port (`component_ports`).
    pub port: u16,
    /// The component's domain, as in Prosody's `Component "podium.meet.example"` line.
    pub component: String,
    /// The `component_secret` of that Component line. Required.
    pub secret: Secret,
    /// The MUC component where `mod_podium` is loaded.
    pub muc: String,
    /// Jitsi's breakout-room MUC component (`breakout_rooms_muc`), where `mod_podium` is loaded too,
    /// with `podium_main_muc`; empty: no breakout rooms are governed. A breakout room follows the
    /// rules of its main room unless a rule names it (`main/breakout`).
    #[serde(default)]
    pub breakout_muc: String,
    /// Send a keepalive ping after this many seconds of silence.
    pub keepalive_secs: u64,
    /// First reconnect delay, doubled after every failed attempt.
    pub reconnect_min_ms: u64,
    /// The cap on the reconnect delay.
    pub reconnect_max_secs: u64,
    /// Occupants per snapshot page asked of the module.
    pub snapshot_page: u32,
}

/// `[database]`: SQL storage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// The SQLite file; created with its tables on first start. Unused when `url` is set.
    pub path: PathBuf,
    /// A PostgreSQL URL (`postgres://user:password@host/db`), for several podium instances (one per
    /// Prosody shard) sharing one rule store. Unset: SQLite at `path`. Redacted like the XMPP secret,
    /// since it may carry a password.
    pub url: Option<Secret>,
    /// This instance's name in the audit log (`decisions.instance`); empty: the host name.
    pub instance: String,
    /// How often to look for rule edits made by other processes (on PostgreSQL a safety net beside
    /// LISTEN/NOTIFY).
    pub poll_interval_ms: u64,
    /// Delete audit records older than this many days (checked at start and hourly); 0 keeps them all.
    pub audit_retention_days: u64,
    /// The audit spool: a local file every decision record is appended to before its decision is
    /// sent, written to the database from there (it survives an outage, a crash, a kill). Empty:
    /// `<path>-audit.spool` beside the SQLite file, or with `url` set,
    /// `podium-<instance>-audit.spool` in the directory of `path`. One per instance.
    pub audit_spool: PathBuf,
}

/// The longest `database.audit_retention_days` accepted: about 1,000 years.
pub const MAX_RETENTION_DAYS: u64 = 365_250;

impl DatabaseConfig {
    /// The PostgreSQL URL, when one is configured.
    pub fn postgres_url(&self) -> Option<&str> {
        self.url
            .as_ref()
            .map(Secret::expose)
            .filter(|url| !url.is_empty())
    }

    /// Where the audit spool is ([`DatabaseConfig::audit_spool`]).
    pub fn audit_spool_path(&self) -> PathBuf {
        if !self.audit_spool.as_os_str().is_empty() {
            return self.audit_spool.clone();
        }
        if self.postgres_url().is_none() {
            let mut name = self.path.as_os_str().to_owned();
            name.push("-audit.spool");
            return PathBuf::from(name);
        }
        let dir = self.path.parent().unwrap_or(Path::new(""));
        dir.join(format!("podium-{}-audit.spool", self.instance_name()))
    }

    /// The instance name: `instance`, else the host name, else "podium".
    pub fn instance_name(&self) -> String {
        if !self.instance.is_empty() {
            return self.instance.clone();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "podium".to_owned())
    }
}

/// `[rules]`: combining.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// What an occupant may send when no rule matches, per kind: a list of `audio`, `video`, `screen`.
    pub default: Vec<String>,
    /// Domains whose jibri, jigasi and transcriber presence features are believed (rules with
    /// `who = 'service'`), like jicofo's `trusted-domains`, e.g. `["recorder.meet.example"]`.
    pub trusted_service_domains: Vec<String>,
    /// podium as a whole in dry-run: decisions are computed, logged and audited as "would grant /
    /// would revoke", never sent to the module.
    pub dry_run: bool,
    /// A holder of a capped kind who keeps it muted (per presence `SourceInfo`) this many seconds
    /// gives the slot to the next in line, if anyone waits. 0: never.
    pub idle_seconds: u64,
    /// A moderator's approval in Jitsi's A/V moderation (reported by mod_podium with
    /// `podium_av_moderation_component`) becomes a grant for at most this many minutes, in the
    /// meeting it was given in only. 0: approvals are not turned into grants.
    pub approval_minutes: u64,
}

/// `[log]`: tracing output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing `EnvFilter` directive; `RUST_LOG` overrides it when set.
    pub filter: String,
    /// `text` for people, `json` for log collectors.
    pub format: LogFormat,
}

/// The log line format.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A secret string: deserialised like a string, printed as `[redacted]`.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    /// The secret itself, for the one place that needs it (the XEP-0114 handshake).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            xmpp: XmppConfig {
                host: "127.0.0.1".into(),
                port: 5347,
                component: "podium.localhost".into(),
                secret: Secret::default(),
                muc: "conference.localhost".into(),
                breakout_muc: String::new(),
                keepalive_secs: 30,
                reconnect_min_ms: 250,
                reconnect_max_secs: 30,
                snapshot_page: 500,
            },
            database: DatabaseConfig {
                path: PathBuf::from("podium.db"),
                url: None,
                instance: String::new(),
                poll_interval_ms: 200,
                audit_retention_days: 0,
                audit_spool: PathBuf::new(),
            },
            rules: RulesConfig {
                default: Vec::new(),
                trusted_service_domains: Vec::new(),
                dry_run: false,
                idle_seconds: 120,
                approval_minutes: 240,
            },
            log: LogConfig {
                filter: "info,sqlx=warn".into(),
                format: LogFormat::Text,
            },
        }
    }
}

/// A configuration problem, naming the key and its environment variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key is missing or has the wrong type.
    #[error("configuration key `{key}` (environment variable {env}): {message}")]
    Key {
        /// Dotted key, e.g. `xmpp.secret`.
        key: String,
        /// The matching variable, e.g. `PODIUM_XMPP__SECRET`.
        env: String,
        /// What is wrong.
        message: String,
    },
    /// The file or the combination could not be read at all.
    #[error("configuration: {0}")]
    Other(String),
}

impl ConfigError {
    fn key(key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Key {
            key: key.to_owned(),
            env: env_var_for(key),
            message: message.into(),
        }
    }
}

/// The environment variable for a dotted key: `xmpp.secret` → `PODIUM_XMPP__SECRET`.
pub fn env_var_for(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.replace('.', "__").to_ascii_uppercase()
    )
}

impl Config {
    /// The figment layers: defaults, then the file (if given), then the environment.
    pub fn figment(file: Option<&Path>) -> Figment {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment.merge(Env::prefixed(ENV_PREFIX).ignore(&["CONFIG"]).split("__"))
    }

    /// Loads and checks the configuration.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        if let Some(file) = file
            && !file.exists()
        {
            return Err(ConfigError::Other(format!(
                "config file {} does not exist",
                file.display()
            )));
        }
        let config: Config = Config::figment(file).extract().map_err(from_figment)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values figment cannot: JIDs, ranges, media names, the secret.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.xmpp.secret.expose().is_empty() {
            return Err(ConfigError::key(
                "xmpp.secret",
                "missing: set it to the component_secret of podium's Component line in Prosody",
            ));
        }
        check_domain("xmpp.component", &self.xmpp.component)?;
        check_domain("xmpp.muc", &self.xmpp.muc)?;
        if !self.xmpp.breakout_muc.is_empty() {
            check_domain("xmpp.breakout_muc", &self.xmpp.breakout_muc)?;
            if self.xmpp.breakout_muc.eq_ignore_ascii_case(&self.xmpp.muc) {
                return Err(ConfigError::key(
                    "xmpp.breakout_muc",
                    "is the same host as xmpp.muc; breakout rooms have their own MUC component",
                ));
            }
        }
        if self.xmpp.keepalive_secs == 0 {
            return Err(ConfigError::key(
                "xmpp.keepalive_secs",
                "must be at least 1",
            ));
        }
        if self.xmpp.reconnect_min_ms == 0 {
            return Err(ConfigError::key(
                "xmpp.reconnect_min_ms",
                "must be at least 1",
            ));
        }
        if self.xmpp.reconnect_max_secs == 0 {
            return Err(ConfigError::key(
                "xmpp.reconnect_max_secs",
                "must be at least 1",
            ));
        }
        if self.xmpp.snapshot_page == 0 {
            return Err(ConfigError::key("xmpp.snapshot_page", "must be at least 1"));
        }
        if self.database.poll_interval_ms == 0 {
            return Err(ConfigError::key(
                "database.poll_interval_ms",
                "must be at least 1",
            ));
        }
        // A cut-off before year 1 cannot be computed (the pruner stopped on a panic, review 14b);
        // 1,000 years is as good as keeping everything.
        if self.database.audit_retention_days > MAX_RETENTION_DAYS {
            return Err(ConfigError::key(
                "database.audit_retention_days",
                format!("must be at most {MAX_RETENTION_DAYS} (0 keeps every record)"),
            ));
        }
        if let Some(url) = self.database.postgres_url()
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::key(
                "database.url",
                "must be a PostgreSQL URL (postgres://user:password@host/database); leave it unset for SQLite",
            ));
        }
        if self.database.path.as_os_str().is_empty() {
            return Err(ConfigError::key("database.path", "must not be empty"));
        }
        self.default_permissions()?;
        tracing_subscriber::EnvFilter::try_new(&self.log.filter)
            .map_err(|e| ConfigError::key("log.filter", e.to_string()))?;
        Ok(())
    }

    /// `rules.default` as a media set.
    pub fn default_permissions(&self) -> Result<MediaSet, ConfigError> {
        MediaSet::parse_list(&self.rules.default.join(","))
            .map_err(|e| ConfigError::key("rules.default", e.to_string()))
    }

    /// The keepalive interval.
    pub fn keepalive(&self) -> Duration {
        Duration::from_secs(self.xmpp.keepalive_secs)
    }
}

fn check_domain(key: &str, value: &str) -> Result<(), ConfigError> {
    match value.parse::<BareJid>() {
        Ok(jid) if jid.node().is_none() => Ok(()),
        Ok(_) => Err(ConfigError::key(
            key,
            format!("{value:?} must be a domain, without `@`"),
        )),
        Err(e) => Err(ConfigError::key(
            key,
            format!("{value:?} is not a valid domain: {e}"),
        )),
    }
}

fn from_figment(error: figment::Error) -> ConfigError {
    let path = error.path.join(".");
    // figment's path may or may not already end with the field it complains about.
    let with_field = |field: &str| {
        if path.is_empty() {
            field.to_owned()
        } else if path == field || path.ends_with(&format!(".{field}")) {
            path.clone()
        } else {
            format!("{path}.{field}")
        }
    };
    match &error.kind {
        figment::error::Kind::MissingField(field) => {
            ConfigError::key(&with_field(field), "missing")
        }
        figment::error::Kind::UnknownField(field, _) => ConfigError::key(
            &with_field(field),
            "unknown key (see config/podium.toml for every key)",
        ),
        kind if !path.is_empty() => ConfigError::key(&path, kind.to_string()),
        _ => ConfigError::Other(error.to_string()),
    }
}

#[cfg(test)]
// figment's Jail closures return figment::Error, which is large; that is figment's API, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    fn load_in(jail: &Jail, file: Option<&str>) -> Result<Config, ConfigError> {
        Config::load(file.map(|f| jail.directory().join(f)).as_deref())
    }

    /// The shipped `config/podium.toml` loads, and says exactly the built-in defaults (it documents
    /// them), with only the secret, which has no default, given.
    #[test]
    fn test_shipped_config_is_the_defaults() {
        Jail::expect_with(|jail| {
            jail.set_env("PODIUM_XMPP__SECRET", "s");
            let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config/podium.toml");
            let config = Config::load(Some(Path::new(shipped))).unwrap();
            let mut expected = Config::default();
            expected.xmpp.secret = config.xmpp.secret.clone();
            assert_eq!(config, expected);
            Ok(())
        });
    }

    #[test]
    fn test_precedence_defaults_file_env() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "podium.toml",
                r#"
                [xmpp]
                secret = "from-file"
                port = 6000
                component = "podium.meet.example"
                [rules]
                default = ["audio"]
                "#,
            )?;
            jail.set_env("PODIUM_XMPP__PORT", "7000");
            let config = load_in(jail, Some("podium.toml")).unwrap();
            // env beats file
            assert_eq!(config.xmpp.port, 7000);
            // file beats default
            assert_eq!(config.xmpp.component, "podium.meet.example");
            assert_eq!(config.xmpp.secret.expose(), "from-file");
            assert_eq!(config.default_permissions().unwrap().to_string(), "audio");
            // default where neither says anything
            assert_eq!(config.xmpp.muc, "conference.localhost");
            assert_eq!(config.database.poll_interval_ms, 200);
            Ok(())
        });
    }

    #[test]
    fn test_env_only_and_config_var_ignored() {
        Jail::expect_with(|jail| {
            jail.set_env("PODIUM_XMPP__SECRET", "s3cret");
            jail.set_env("PODIUM_CONFIG", "/nonexistent/podium.toml");
            jail.set_env("PODIUM_DATABASE__PATH", "/tmp/x.db");
            let config = load_in(jail, None).unwrap();
            assert_eq!(config.xmpp.secret.expose(), "s3cret");
            assert_eq!(config.database.path, PathBuf::from("/tmp/x.db"));
            Ok(())
        });
    }

    #[test]
    fn test_missing_secret_names_key_and_env() {
        Jail::expect_with(|jail| {
            let err = load_in(jail, None).unwrap_err().to_string();
            assert!(err.starts_with(
                "configuration key `xmpp.secret` (environment variable PODIUM_XMPP__SECRET): missing"
            ));
            Ok(())
        });
    }

    #[test]
    fn test_wrong_type_names_key_and_env() {
        Jail::expect_with(|jail| {
            jail.set_env("PODIUM_XMPP__SECRET", "s");
            jail.set_env("PODIUM_XMPP__PORT", "many");
            let err = load_in(jail, None).unwrap_err().to_string();
            assert!(
                err.starts_with(
                    "configuration key `xmpp.port` (environment variable PODIUM_XMPP__PORT)"
                ),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn test_unknown_key_in_file() {
        Jail::expect_with(|jail| {
            jail.create_file("podium.toml", "[xmpp]\nsecret = \"s\"\nsecrte = \"typo\"\n")?;
            let err = load_in(jail, Some("podium.toml")).unwrap_err().to_string();
            assert!(
                err.starts_with("configuration key `xmpp.secrte` (environment variable PODIUM_XMPP__SECRTE): unknown key"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn test_bad_media_and_domain() {
        Jail::expect_with(|jail| {
            jail.set_env("PODIUM_XMPP__SECRET", "s");
            jail.set_env("PODIUM_RULES__DEFAULT", "[audio, smell]");
            let err = load_in(jail, None).unwrap_err().to_string();
            assert!(
                err.starts_with(
                    "configuration key `rules.default` (environment variable PODIUM_RULES__DEFAULT)"
                ),
                "{err}"
            );
            jail.set_env("PODIUM_RULES__DEFAULT", "[]");
            jail.set_env("PODIUM_XMPP__MUC", "room@conference.localhost");
            let err = load_in(jail, None).unwrap_err().to_string();
            assert!(err.starts_with("configuration key `xmpp.muc`"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn test_retention_beyond_a_computable_date_is_refused() {
        Jail::expect_with(|jail| {
            jail.set_env("PODIUM_XMPP__SECRET", "s");
            jail.set_env("PODIUM_DATABASE__AUDIT_RETENTION_DAYS", "10000000");
            let err = load_in(jail, None).unwrap_err().to_string();
            assert!(
                err.starts_with("configuration key `database.audit_retention_days`"),
                "{err}"
            );
            jail.set_env(
                "PODIUM_DATABASE__AUDIT_RETENTION_DAYS",
                MAX_RETENTION_DAYS.to_string(),
            );
            let config = load_in(jail, None).unwrap();
            // The pruner's cut-off for the longest accepted retention is a date.
            let span = jiff::SignedDuration::from_secs(
                (config.database.audit_retention_days * 86_400) as i64,
            );
            assert!(jiff::Timestamp::now().checked_sub(span).is_ok());
            Ok(())
        });
    }

    #[test]
    fn test_missing_file() {
        Jail::expect_with(|jail| {
            let err = load_in(jail, Some("nope.toml")).unwrap_err().to_string();
            assert!(err.contains("does not exist"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn test_secret_never_printed() {
        let mut config = Config::default();
        config.xmpp.secret = Secret::new("hunter2");
        config.database.url = Some(Secret::new("postgres://podium:hunter3@db/rules"));
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"));
        assert!(!debug.contains("hunter3"));
        assert!(debug.contains("[redacted]"));
    }

    #[test]
    fn test_database_url_from_env_and_checked() {
        Jail::expect_with(|jail| {
            jail.set_env("PODIUM_XMPP__SECRET", "s");
            jail.set_env(
                "PODIUM_DATABASE__URL",
                "postgres://podium:pw@127.0.0.1/rules",
            );
            jail.set_env("PODIUM_DATABASE__INSTANCE", "shard-a");
            let config = load_in(jail, None).unwrap();
            assert_eq!(
                config.database.postgres_url(),
                Some("postgres://podium:pw@127.0.0.1/rules")
            );
            assert_eq!(config.database.instance_name(), "shard-a");
            jail.set_env("PODIUM_DATABASE__URL", "mysql://127.0.0.1/rules");
            let err = load_in(jail, None).unwrap_err().to_string();
            assert!(
                err.starts_with(
                    "configuration key `database.url` (environment variable PODIUM_DATABASE__URL): must be a PostgreSQL URL"
                ),
                "{err}"
            );
            assert!(!err.contains("127.0.0.1"), "the URL is not echoed: {err}");
            Ok(())
        });
    }

    #[test]
    fn test_instance_defaults_to_the_host_name() {
        let config = Config::default();
        assert!(!config.database.instance_name().is_empty());
        assert_eq!(config.database.postgres_url(), None);
    }
}
