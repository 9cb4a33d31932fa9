//! How commands talk to the user: human text or one JSON document on stdout,
//! warnings and errors on stderr.

use std::path::PathBuf;

use serde::Serialize;

use super::GlobalArgs;

pub struct Output {
    pub json: bool,
    pub quiet: bool,
    /// The folder commands act in (`-C`), or the current one.
    pub dir: PathBuf,
}

impl Output {
    pub fn new(global: &GlobalArgs) -> Self {
        Output {
            json: global.json,
            quiet: global.quiet,
            dir: global.dir.clone().unwrap_or_else(|| PathBuf::from(".")),
        }
    }

    /// Prints `value` as JSON when `--json` was given, else runs `human`.
    pub fn report<T: Serialize>(&self, value: &T, human: impl FnOnce()) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
        } else {
            human();
        }
        Ok(())
    }

    /// A warning line on stderr (also with `--json`, never with `-q`).
    pub fn warn(&self, message: &str) {
        if !self.quiet {
            eprintln!("warning: {message}");
        }
    }

    /// The one error line, with its causes.
    pub fn error(&self, error: &anyhow::Error) {
        eprintln!("error: {error:#}");
    }
}
