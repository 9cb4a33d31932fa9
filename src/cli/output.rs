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
            out!("{}", serde_json::to_string_pretty(value)?);
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

    /// The one error line, with its causes (a cause that the message
    /// already quotes, as most of ours do, is not repeated).
    pub fn error(&self, error: &anyhow::Error) {
        eprintln!("error: {}", error_line(error));
    }
}

/// A listing printed row by row as it is made, for outputs too long to
/// hold (`ls` of a million files): buffered, one write per 64 KiB rather
/// than per line; with `--json`, one array, printed as
/// `serde_json::to_string_pretty` prints a whole one. A failed write ends
/// the process as `out!` does.
pub struct Listing {
    stdout: std::io::BufWriter<std::io::StdoutLock<'static>>,
    json: bool,
    rows: u64,
}

impl Listing {
    pub fn new(out: &Output) -> Listing {
        Listing {
            stdout: std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock()),
            json: out.json,
            rows: 0,
        }
    }

    /// Prints one row: `value` as JSON, or the line `human` writes.
    pub fn row<T: Serialize>(
        &mut self,
        value: &T,
        human: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
    ) {
        use std::io::Write as _;
        let written = if self.json {
            let start = if self.rows == 0 { "[\n" } else { ",\n" };
            // A listed row is plain fields: serialising it cannot fail.
            let text = serde_json::to_string_pretty(value).unwrap_or_default();
            self.stdout.write_all(start.as_bytes()).and_then(|()| {
                text.lines().enumerate().try_for_each(|(i, line)| {
                    let sep = if i == 0 { "" } else { "\n" };
                    write!(self.stdout, "{sep}  {line}")
                })
            })
        } else {
            human(&mut self.stdout)
        };
        if let Err(e) = written {
            stdout_failed(e);
        }
        self.rows += 1;
    }

    /// Ends the listing (closes the JSON array) and flushes it.
    pub fn finish(mut self) {
        use std::io::Write as _;
        let end = match (self.json, self.rows) {
            (false, _) => "",
            (true, 0) => "[]\n",
            (true, _) => "\n]\n",
        };
        if let Err(e) = self
            .stdout
            .write_all(end.as_bytes())
            .and_then(|()| self.stdout.flush())
        {
            stdout_failed(e);
        }
    }
}

/// Ends the process after a failed write to stdout (see `out!`).
pub fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: cannot write to standard output: {e}");
    std::process::exit(1);
}

/// `error` and each cause not already quoted, joined by `: `.
pub fn error_line(error: &anyhow::Error) -> String {
    let mut line = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::error_line;

    #[test]
    fn a_cause_the_message_quotes_is_not_repeated() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let quoted = harmony::Error::Io {
            action: "sync",
            path: "/x".into(),
            source: io,
        };
        let line = error_line(&anyhow::Error::new(quoted).context("get failed"));
        assert_eq!(line, "get failed: cannot sync /x: entity not found");
    }
}
