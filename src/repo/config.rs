//! `.harmony/config.toml`: this location's own choices (not replicated).
//!
//! A missing file means every default. A key with a bad value is an error
//! naming the key; an unknown key is a warning (it may come from a newer
//! Harmony), never a silent typo.

use std::path::Path;

use super::Repo;
use crate::error::{Error, Result};
use crate::model::STATE_DIR;

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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            symlinks: true,
            fold_case: None,
        }
    }
}

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

    fn parse(text: &str) -> std::result::Result<Config, String> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
        let mut config = Config::default();
        for (key, value) in &table {
            match key.as_str() {
                "symlinks" => {
                    config.symlinks = value.as_bool().ok_or_else(|| {
                        format!("`symlinks` must be true or false, not `{value:?}`")
                    })?
                }
                "fold_case" => {
                    config.fold_case = Some(value.as_bool().ok_or_else(|| {
                        format!("`fold_case` must be true or false, not `{value:?}`")
                    })?)
                }
                other => tracing::warn!("{CONFIG_FILE}: unknown key `{other}` ignored"),
            }
        }
        Ok(config)
    }
}

impl Repo {
    /// This location's `config.toml`, read now (an edit takes effect at the
    /// next command).
    pub fn config(&self) -> Result<Config> {
        Config::load(&self.root.join(STATE_DIR))
    }

    /// The working tree, for writing: knows whether its file system folds
    /// case (set in `config.toml`, or probed once per `Repo`).
    pub(crate) fn tree(&self) -> Result<crate::tree::Tree> {
        let folds = match self.config()?.fold_case {
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
        };
        Ok(crate::tree::Tree::new(&self.root).folding_case(folds))
    }
}

#[cfg(test)]
mod tests {
    use super::Config;

    #[test]
    fn parses_known_keys_and_names_bad_values() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
        assert!(!Config::parse("symlinks = false").unwrap().symlinks);
        let err = Config::parse("symlinks = 3").unwrap_err();
        assert!(err.contains("`symlinks`"), "{err}");
        assert!(Config::parse("symlinks = ").is_err());
        assert!(Config::parse("future = 1").is_ok());
    }
}
