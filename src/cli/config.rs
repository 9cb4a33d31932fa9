//! `harmony config [KEY [VALUE]]` and `config --unset KEY`: read and write
//! this location's `.harmony/config.toml`.

use clap::Args;
use harmony::{ConfigSource, ConfigValue, Repo, CONFIG_KEYS};

use super::Output;

#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// The key to print, or to set to VALUE.
    #[arg(value_name = "KEY")]
    key: Option<String>,
    /// The value to write: true, false, a number, or text such as 500ms,
    /// 10MiB or 0.0.0.0:7447 (quotes are not needed).
    #[arg(value_name = "VALUE", requires = "key")]
    value: Option<String>,
    /// Remove KEY from config.toml: it takes its default again.
    #[arg(long, value_name = "KEY", conflicts_with_all = ["key", "value"])]
    unset: Option<String>,
}

/// The keys and what each takes, for `harmony config --help` and the man
/// page (from the list the parser itself checks, so they cannot differ).
pub fn keys_help() -> String {
    let mut help = String::from(
        "With no KEY, prints every key with its effective value and where it comes from \
         (config.toml, the default, the address given at init, a probe of the file system). \
         A bad value is refused, naming the key, and nothing is written; the rest of \
         config.toml, comments included, is kept. A running serve takes the new values at \
         SIGHUP or its next start.\n\nKeys:\n",
    );
    for (key, takes) in CONFIG_KEYS {
        help.push_str(&format!("  {key:<16} {takes}\n"));
    }
    help
}

pub fn config(out: &Output, args: ConfigArgs) -> anyhow::Result<()> {
    let repo = Repo::open(&out.dir)?;
    if let Some(key) = &args.unset {
        repo.set_config(key, None)?;
        // An unknown key just removed has no value to show.
        return match repo.config_value(key) {
            Ok(value) => show(out, &value),
            Err(_) => out.report(&serde_json::json!({ "key": key, "removed": true }), || {
                if !out.quiet {
                    out!("removed {key}");
                }
            }),
        };
    }
    match (&args.key, &args.value) {
        (None, _) => {
            let values = repo.config_values()?;
            out.report(&values, || {
                for value in &values {
                    out!("{}", line(value));
                }
            })
        }
        (Some(key), None) => {
            let value = repo.config_value(key)?;
            out.report(&value, || {
                if let Some(value) = &value.value {
                    out!("{}", plain(value));
                }
            })
        }
        (Some(key), Some(value)) => {
            repo.set_config(key, Some(value))?;
            show(out, &repo.config_value(key)?)
        }
    }
}

/// One key as a line of config.toml, with where its value comes from.
fn show(out: &Output, value: &ConfigValue) -> anyhow::Result<()> {
    out.report(value, || {
        if !out.quiet {
            out!("{}", line(value));
        }
    })
}

/// `key = value  # default`, or `# key: none (default)` without a value.
fn line(value: &ConfigValue) -> String {
    let source = match value.source {
        ConfigSource::File => "",
        ConfigSource::Default => "default",
        ConfigSource::Init => "from init",
        ConfigSource::Probed => "probed",
    };
    match (&value.value, source) {
        (Some(v), "") => format!("{} = {v}", value.key),
        (Some(v), source) => format!("{:<28} # {source}", format!("{} = {v}", value.key)),
        (None, source) => format!("# {}: none ({source})", value.key),
    }
}

/// A value as a script wants it: text without its quotes.
fn plain(value: &toml::Value) -> String {
    match value {
        toml::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}
