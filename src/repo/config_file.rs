//! `harmony config`: each key's effective value, and single keys written
//! into `config.toml` with the rest of the file (its comments, its order,
//! keys this Harmony does not know) kept as the user wrote it.

use serde::Serialize;
use toml_edit::{DocumentMut, Item, Value};

use super::config::{Config, CONFIG_FILE, KEYS};
use super::Repo;
use crate::error::{Error, Result};
use crate::model::STATE_DIR;

/// Where a key's effective value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigSource {
    /// Set in `config.toml`.
    File,
    /// Harmony's default.
    Default,
    /// Unset, so the address given at `init` (`listen`).
    Init,
    /// Unset, so found out by a probe of the file system (`fold_case`).
    Probed,
}

/// One key of `config.toml` with its effective value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConfigValue {
    /// The key, as written in the file.
    pub key: &'static str,
    /// As it would be written in `config.toml`; `None`: no value (no
    /// bandwidth limit).
    pub value: Option<toml::Value>,
    /// Where the value comes from (the file, a default, `init`, a probe).
    pub source: ConfigSource,
    /// What the key takes.
    pub takes: &'static str,
}

impl Repo {
    /// Every key `config.toml` knows, with its effective value here.
    pub fn config_values(&self) -> Result<Vec<ConfigValue>> {
        let state_dir = self.root.join(STATE_DIR);
        let config = Config::load(&state_dir)?;
        let text = read_config_text(&state_dir.join(CONFIG_FILE))?;
        let set: toml::Table = text.parse().unwrap_or_default();
        let mut values = Vec::with_capacity(KEYS.len());
        for (key, takes) in KEYS {
            let (value, source) = match (set.contains_key(*key), *key) {
                (true, _) => (value_of(&config, key), ConfigSource::File),
                (false, "listen") => (
                    Some(toml::Value::String(self.settings.listen.clone())),
                    ConfigSource::Init,
                ),
                (false, "fold_case") => (
                    Some(toml::Value::Boolean(self.folds_case()?)),
                    ConfigSource::Probed,
                ),
                (false, _) => (value_of(&config, key), ConfigSource::Default),
            };
            values.push(ConfigValue {
                key,
                value,
                source,
                takes,
            });
        }
        Ok(values)
    }

    /// One key's effective value; an unknown key is refused with the list.
    pub fn config_value(&self, key: &str) -> Result<ConfigValue> {
        self.config_values()?
            .into_iter()
            .find(|v| v.key == key)
            .ok_or_else(|| Error::Refused(unknown_key(key)))
    }

    /// Writes `key = value` into `config.toml` (`value` as typed: `true`,
    /// `500ms`, `10MiB`, `"0.0.0.0:7447"`), or removes the key (with the
    /// comment lines right above it, which were about it) when `value` is
    /// `None`. Refused, with nothing written, when the key is unknown or
    /// the file that would result has a bad value (the error names it).
    pub fn set_config(&self, key: &str, value: Option<&str>) -> Result<()> {
        let path = self.root.join(STATE_DIR).join(CONFIG_FILE);
        let text = read_config_text(&path)?;
        let edited = edit(&text, key, value).map_err(Error::Refused)?;
        let state_dir = self.root.join(STATE_DIR);
        let mut temp = tempfile::NamedTempFile::new_in(&state_dir)
            .map_err(Error::io("create a temporary file in", &state_dir))?;
        std::io::Write::write_all(&mut temp, edited.as_bytes())
            .and_then(|()| temp.as_file().sync_all())
            .map_err(Error::io("write", temp.path()))?;
        temp.persist(&path)
            .map_err(|e| Error::io("replace", &path)(e.error))?;
        Ok(())
    }
}

/// The refusal of a key `config.toml` does not know, with those it does.
fn unknown_key(key: &str) -> String {
    let keys: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
    format!("unknown key `{key}`; the keys are: {}", keys.join(", "))
}

/// The file's text; no file is an empty one.
fn read_config_text(path: &std::path::Path) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(Error::io("read", path)(e)),
    }
}

/// The text of `config.toml` after setting (or, with `None`, removing)
/// `key`, checked by [`Config::parse`]; the error says why not, and what to
/// do.
pub(super) fn edit(
    text: &str,
    key: &str,
    value: Option<&str>,
) -> std::result::Result<String, String> {
    let known = KEYS.iter().any(|(k, _)| *k == key);
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e| format!("{CONFIG_FILE} is not valid TOML ({e}); fix it by hand first"))?;
    let removable = value.is_none() && doc.contains_key(key);
    if !known && !removable {
        return Err(unknown_key(key));
    }
    match value {
        Some(typed) => {
            let mut new = typed_value(typed);
            if let Some(old) = doc.get(key).and_then(Item::as_value) {
                *new.decor_mut() = old.decor().clone();
            }
            doc[key] = Item::Value(new);
        }
        None => {
            doc.remove(key);
        }
    }
    let edited = doc.to_string();
    Config::parse(&edited).map_err(|why| format!("{why}; nothing written"))?;
    Ok(edited)
}

/// A value typed on the command line: TOML's `true`, `false`, an integer
/// or a quoted string as such, anything else (`500ms`, `10MiB`,
/// `0.0.0.0:7447`) as a string.
fn typed_value(typed: &str) -> Value {
    match typed.trim().parse::<Value>() {
        Ok(value @ (Value::Boolean(_) | Value::Integer(_) | Value::String(_))) => {
            let mut value = value;
            value.decor_mut().clear();
            value
        }
        _ => Value::from(typed),
    }
}

/// `key`'s value in `config` as `config.toml` would say it; `None` when it
/// has none.
fn value_of(config: &Config, key: &str) -> Option<toml::Value> {
    let duration = |d| toml::Value::String(humantime::format_duration(d).to_string());
    Some(match key {
        "symlinks" => toml::Value::Boolean(config.symlinks),
        "fold_case" => toml::Value::Boolean(config.fold_case?),
        "listen" => toml::Value::String(config.listen.clone()?),
        "watch" => toml::Value::Boolean(config.watch),
        "quiet_period" => duration(config.quiet_period),
        "rescan_interval" => duration(config.rescan_interval),
        "sync_interval" => duration(config.sync_interval),
        "discovery" => toml::Value::Boolean(config.discovery),
        "bandwidth_limit" => toml::Value::Integer(i64::try_from(config.bandwidth_limit?).ok()?),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::{edit, value_of};
    use crate::repo::config::{Config, KEYS};

    #[test]
    fn a_key_is_written_with_the_rest_of_the_file_kept() {
        let text = "# my settings\nwatch = false # on battery\n\n# soon\nfuture = 3\n";
        let edited = edit(text, "watch", Some("true")).unwrap();
        assert_eq!(
            edited,
            "# my settings\nwatch = true # on battery\n\n# soon\nfuture = 3\n"
        );
        let edited = edit(&edited, "quiet_period", Some("500ms")).unwrap();
        assert!(
            edited.ends_with("future = 3\nquiet_period = \"500ms\"\n"),
            "{edited}"
        );
        assert_eq!(
            Config::parse(&edited).unwrap().quiet_period,
            std::time::Duration::from_millis(500)
        );
        let edited = edit(&edited, "bandwidth_limit", Some("1000")).unwrap();
        assert!(edited.contains("bandwidth_limit = 1000\n"), "{edited}");
        let edited = edit(&edited, "listen", Some("\"127.0.0.1:9\"")).unwrap();
        assert!(edited.contains("listen = \"127.0.0.1:9\"\n"), "{edited}");
    }

    #[test]
    fn a_bad_value_or_an_unknown_key_is_refused_with_why() {
        let err = edit("", "quiet_period", Some("soon")).unwrap_err();
        assert!(
            err.contains("`quiet_period`") && err.contains("nothing written"),
            "{err}"
        );
        let err = edit("", "watch", Some("maybe")).unwrap_err();
        assert!(err.contains("`watch` must be true or false"), "{err}");
        let err = edit("", "quiet", Some("1s")).unwrap_err();
        assert!(err.contains("unknown key `quiet`"), "{err}");
        for (key, _) in KEYS {
            assert!(err.contains(key), "{err} lists {key}");
        }
        assert!(edit("watch = [", "watch", Some("true")).is_err());
    }

    #[test]
    fn unset_removes_a_key_also_one_this_version_does_not_know() {
        let text = "watch = false\nfuture = 3\n";
        assert_eq!(edit(text, "watch", None).unwrap(), "future = 3\n");
        assert_eq!(edit(text, "future", None).unwrap(), "watch = false\n");
        assert_eq!(edit(text, "discovery", None).unwrap(), text);
        assert!(edit(text, "nonsense", None).is_err());
    }

    #[test]
    fn every_key_has_a_value_that_parses_back() {
        let config = Config {
            fold_case: Some(true),
            listen: Some("127.0.0.1:7447".into()),
            bandwidth_limit: Some(10 << 20),
            ..Config::default()
        };
        let mut text = String::new();
        for (key, _) in KEYS {
            let value = value_of(&config, key).unwrap();
            text.push_str(&format!("{key} = {value}\n"));
        }
        assert_eq!(Config::parse(&text).unwrap(), config);
        assert_eq!(value_of(&Config::default(), "bandwidth_limit"), None);
    }
}
