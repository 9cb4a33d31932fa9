//! `completions SHELL` and `man [DIR]`: both generated from the clap
//! definitions, so they cannot fall behind the commands.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{Cli, Output};

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    shell: Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write harmony.1 and one page per command (harmony-sync.1,
    /// harmony-peer-add.1, ...) into DIR; without DIR, print harmony.1.
    #[arg(value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Prints the completion script on stdout (also with `--json`: the script
/// is the output, for the shell to read).
pub fn completions(args: CompletionsArgs) -> anyhow::Result<()> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "harmony", &mut script);
    out!("{}", String::from_utf8_lossy(&script).trim_end());
    Ok(())
}

pub fn man(out: &Output, args: ManArgs) -> anyhow::Result<()> {
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    let Some(dir) = args.dir else {
        let mut page = Vec::new();
        clap_mangen::Man::new(command).render(&mut page)?;
        out!("{}", String::from_utf8_lossy(&page).trim_end());
        return Ok(());
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    write_pages(&command, &dir, &mut written)
        .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
    out.report(&written, || {
        if !out.quiet {
            for path in &written {
                out!("{}", path.display());
            }
        }
    })
}

/// The page of `command` and, recursively, of each of its subcommands.
fn write_pages(
    command: &clap::Command,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    let page = clap_mangen::Man::new(command.clone())
        .source(concat!("harmony ", env!("CARGO_PKG_VERSION")))
        .manual("Harmony Manual");
    written.push(page.generate_to(dir)?);
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    Ok(())
}
