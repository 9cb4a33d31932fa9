//! `.harmony/config.toml`: this location's own choices (not replicated).
//!
//! A missing file means every default. A key with a bad value is an error
//! naming the key; an unknown key is a warning (it may come from a newer
//! Harmony), never a silent typo.

use std::path::Path;
use std::time::Duration;

use super::Repo;
use crate::error::{Error, Result};
use crate::model::{parse_size, STATE_DIR};

/// The file inside `.harmony/`.
pub const CONFIG_FILE: &str = "config.toml";

/// A location's settings from `config.toml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Record and sync symbolic links as links (`symlinks = false`: skip
    /// them with a warning, as Harmony did before links were synced).
    pub symlinks: bool,
    /// Whether this location's file system takes names that differ only in
    /// case for one (`fold_case = true|false`); found out by a probe in
    /// `.harmony/` when not set.
    pub fold_case: Option<bool>,
    /// The address `serve` listens on (`listen = "host:port"`); unset: the
    /// one given at `init`.
    pub listen: Option<String>,
    /// Whether `serve` watches the working tree and commits by itself
    /// (`watch = false`: it commits only before answering a sync).
    pub watch: bool,
    /// How long the tree must be quiet before `serve` commits (`"1s"`).
    pub quiet_period: Duration,
    /// How often `serve` rescans the whole tree even when the watcher saw
    /// nothing (`"1h"`); a watcher that lost events rescans at once.
    pub rescan_interval: Duration,
    /// How often `serve` syncs with every peer even without news (`"5m"`).
    pub sync_interval: Duration,
    /// Whether `serve` announces itself and listens for peers on the LAN.
    pub discovery: bool,
    /// Content transfer bytes per second at most (`"10MiB"`, `"500k"`, or a
    /// number of bytes); unset: no limit.
    pub bandwidth_limit: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            symlinks: true,
            fold_case: None,
            listen: None,
            watch: true,
            quiet_period: Duration::from_secs(1),
            rescan_interval: Duration::from_secs(3600),
            sync_interval: Duration::from_secs(300),
            discovery: true,
            bandwidth_limit: None,
        }
    }
}

/// The keys `config.toml` knows, with what each takes (for errors and for
/// `harmony config`).
pub const KEYS: &[(&str, &str)] = &[
    ("symlinks", "true or false"),
    ("fold_case", "true or false"),
    ("listen", "an address host:port, e.g. \"0.0.0.0:7447\""),
    ("watch", "true or false"),
    ("quiet_period", "a duration, e.g. \"1s\" or \"500ms\""),
    ("rescan_interval", "a duration, e.g. \"1h\""),
    ("sync_interval", "a duration, e.g. \"5m\""),
    ("discovery", "true or false"),
    (
        "bandwidth_limit",
        "bytes per second, e.g. \"10MiB\", \"500k\" or 1000000",
    ),
];

impl Config {
    /// Reads `config.toml` in the state folder `state_dir`.
    pub fn load(state_dir: &Path) -> Result<Config> {
        let path = state_dir.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => return Err(Error::io("read", &path)(e)),
        };
        Config::parse(&text).map_err(|why| Error::Config { path, why })
    }

    /// Parses the text of a `config.toml`; the error names the bad key.
    pub fn parse(text: &str) -> std::result::Result<Config, String> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
        let mut config = Config::default();
        for (key, value) in &table {
            config.set(key, value)?;
        }
        Ok(config)
    }

    /// Sets `key` from its TOML `value`; an unknown key is a warning.
    fn set(&mut self, key: &str, value: &toml::Value) -> std::result::Result<(), String> {
        let bad = || {
            let wants = KEYS.iter().find(|(k, _)| *k == key).map_or("", |(_, w)| w);
            format!("`{key}` must be {wants}, not {}", shown(value))
        };
        let flag = || value.as_bool().ok_or_else(bad);
        let duration = || {
            value
                .as_str()
                .and_then(|text| humantime::parse_duration(text).ok())
                .filter(|d| !d.is_zero())
                .ok_or_else(bad)
        };
        match key {
            "symlinks" => self.symlinks = flag()?,
            "fold_case" => self.fold_case = Some(flag()?),
            "listen" => {
                let text = value.as_str().ok_or_else(bad)?;
                text.parse::<std::net::SocketAddr>().map_err(|_| bad())?;
                self.listen = Some(text.to_owned());
            }
            "watch" => self.watch = flag()?,
            "quiet_period" => self.quiet_period = duration()?,
            "rescan_interval" => self.rescan_interval = duration()?,
            "sync_interval" => self.sync_interval = duration()?,
            "discovery" => self.discovery = flag()?,
            "bandwidth_limit" => {
                let rate = match value {
                    toml::Value::Integer(n) => u64::try_from(*n).ok(),
                    toml::Value::String(text) => parse_rate(text),
                    _ => None,
                };
                self.bandwidth_limit = Some(rate.filter(|r| *r > 0).ok_or_else(bad)?);
            }
            other => tracing::warn!("{CONFIG_FILE}: unknown key `{other}` ignored"),
        }
        Ok(())
    }
}

/// A TOML value as the user wrote it, near enough for an error message.
fn shown(value: &toml::Value) -> String {
    match value {
        toml::Value::String(text) => format!("{text:?}"),
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(x) => x.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        other => format!("a {}", other.type_str()),
    }
}

/// `"10MiB"`, `"10 MB"`, `"500k"`, `"1000"` (per second): a size as
/// [`parse_size`] reads it, optionally followed by `/s`; at least one byte.
fn parse_rate(text: &str) -> Option<u64> {
    let text = text.trim();
    parse_size(text.strip_suffix("/s").unwrap_or(text)).filter(|bytes| *bytes > 0)
}

impl Repo {
    /// This location's `config.toml`, read now (an edit takes effect at the
    /// next command).
    pub fn config(&self) -> Result<Config> {
        Config::load(&self.root.join(STATE_DIR))
    }

    /// The working tree, for writing: knows whether its file system folds
    /// case.
    pub(crate) fn tree(&self) -> Result<crate::tree::Tree> {
        Ok(crate::tree::Tree::new(&self.root).folding_case(self.folds_case()?))
    }

    /// Whether this location's file system folds case: set in
    /// `config.toml`, or probed once per `Repo`.
    pub(crate) fn folds_case(&self) -> Result<bool> {
        Ok(match self.config()?.fold_case {
            Some(folds) => folds,
            None => match self.probed_case_folding.get() {
                Some(folds) => *folds,
                None => {
                    let state_dir = self.root.join(STATE_DIR);
                    let folds = crate::tree::Tree::probe_case_folding(&state_dir)
                        .map_err(Error::io("probe the file system of", &state_dir))?;
                    *self.probed_case_folding.get_or_init(|| folds)
                }
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_rate, Config};
    use std::time::Duration;

    #[test]
    fn parses_known_keys_and_names_bad_values() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
        assert!(!Config::parse("symlinks = false").unwrap().symlinks);
        let err = Config::parse("symlinks = 3").unwrap_err();
        assert!(err.contains("`symlinks`"), "{err}");
        assert!(Config::parse("symlinks = ").is_err());
        assert!(Config::parse("future = 1").is_ok());
    }

    #[test]
    fn parses_the_serve_keys() {
        let config = Config::parse(
            "listen = \"127.0.0.1:9000\"\nwatch = false\nquiet_period = \"250ms\"\n\
             rescan_interval = \"2h\"\nsync_interval = \"30s\"\ndiscovery = false\n\
             bandwidth_limit = \"10MiB\"",
        )
        .unwrap();
        assert_eq!(config.listen.as_deref(), Some("127.0.0.1:9000"));
        assert!(!config.watch && !config.discovery);
        assert_eq!(config.quiet_period, Duration::from_millis(250));
        assert_eq!(config.rescan_interval, Duration::from_secs(7200));
        assert_eq!(config.sync_interval, Duration::from_secs(30));
        assert_eq!(config.bandwidth_limit, Some(10 << 20));
        for (text, key) in [
            ("listen = \"nowhere\"", "`listen`"),
            ("quiet_period = \"soon\"", "`quiet_period`"),
            ("quiet_period = \"0s\"", "`quiet_period`"),
            ("sync_interval = 5", "`sync_interval`"),
            ("bandwidth_limit = \"fast\"", "`bandwidth_limit`"),
            ("bandwidth_limit = 0", "`bandwidth_limit`"),
        ] {
            let err = Config::parse(text).unwrap_err();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn reads_rates_in_decimal_and_binary_units() {
        for (text, bytes) in [
            ("1000", Some(1000)),
            ("500k", Some(500_000)),
            ("1.5 MB/s", Some(1_500_000)),
            ("2GiB", Some(2 << 30)),
            ("1KiB/s", Some(1024)),
            ("0.1", None),
            ("12 parsecs", None),
            ("", None),
        ] {
            assert_eq!(parse_rate(text), bytes, "{text}");
        }
    }
}
