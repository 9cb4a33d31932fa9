//! The command line (see CLI.md): clap definitions and one small module per
//! command group, each a thin call into the library.

/// `println!` for command output, except that a closed stdout (the output
/// piped into `head`, say) ends the process quietly with status 0, as
/// ripgrep does, instead of a panic; any other write error is reported.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            $crate::cli::output::stdout_failed(e);
        }
    }};
}

mod config;
mod conflicts;
mod demo;
mod dial;
mod docs;
mod local;
mod output;
mod pair;
mod peer;
mod placement;
mod progress;
mod serve;
mod sync;
mod transfer;
mod trash;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub use output::Output;

#[derive(Parser, Debug)]
#[command(
    name = "harmony",
    version,
    about = "Peer-to-peer file synchronisation for large repositories spread over many machines",
    propagate_version = true
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Act as if started in DIR (the location is found by walking up to .harmony/).
    #[arg(short = 'C', global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print one machine-readable JSON document on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output (-v: info, -vv: debug, -vvv: trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Print only errors; no progress bars.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Make this folder a location of a new repository.
    Init(local::InitArgs),
    /// Print this node's id, name and listen address.
    Id,
    /// Record local changes: adds, edits, deletions, renames.
    Commit(local::CommitArgs),
    /// Show what differs: uncommitted changes, outdated and conflicted
    /// files; and, while `serve` runs here, its peers and transfers.
    Status(local::StatusArgs),
    /// List every file of the repository, also those not held here.
    Ls(local::LsArgs),
    /// Show which locations hold the content of each file.
    Whereis(local::WhereisArgs),
    /// List conflicted files with each side's version, size, node and time.
    Conflicts,
    /// Settle a conflict: keep the local version, a node's, or both.
    Resolve(conflicts::ResolveArgs),
    /// Show or set what this location wants (its preferred-content
    /// expression), or explain why it wants a file.
    Wanted(placement::WantedArgs),
    /// Show this location's groups, or put it in or out of one.
    Group(placement::GroupArgs),
    /// Show or set how many copies of each file the repository keeps.
    Numcopies(placement::NumcopiesArgs),
    /// Manage the trusted peers: add, list, remove, ping.
    #[command(subcommand)]
    Peer(peer::PeerCommand),
    /// Print a one-time code that lets another node pair with this one
    /// (`harmony join CODE` there): both then trust each other.
    Invite(pair::InviteArgs),
    /// Pair with the node whose `harmony invite` printed CODE: both then
    /// trust each other.
    Join(pair::JoinArgs),
    /// Print or set this location's settings in .harmony/config.toml.
    #[command(after_long_help = config::keys_help())]
    Config(config::ConfigArgs),
    /// Run this node: answer trusted peers until Ctrl-C or SIGTERM.
    Serve(serve::ServeArgs),
    /// Commit, then exchange state with peers both ways and apply what
    /// needs no transfer (renames, deletions, content already here).
    Sync(sync::SyncArgs),
    /// Fetch the newest content of files from locations holding it.
    Get(transfer::GetArgs),
    /// Remove local copies once numcopies other locations confirm they hold them.
    Drop(transfer::DropArgs),
    /// List, restore or empty what .harmony/trash/ keeps: last copies of
    /// versions removed elsewhere.
    Trash(trash::TrashArgs),
    /// Show the whole story on this machine: three locations in a temporary
    /// folder, syncing over loopback; removed afterwards.
    Demo(demo::DemoArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(docs::CompletionsArgs),
    /// Write the man pages (one per command), or print harmony(1).
    Man(docs::ManArgs),
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Usage errors exit 2, --help and --version 0 (clap decides).
        Err(e) => e.exit(),
    };
    init_logging(&cli.global);
    let out = Output::new(&cli.global);
    let result = match cli.command {
        Command::Init(args) => local::init(&out, args),
        Command::Id => local::id(&out),
        Command::Commit(args) => local::commit(&out, args),
        Command::Status(args) => local::status(&out, args),
        Command::Ls(args) => local::ls(&out, args),
        Command::Whereis(args) => local::whereis(&out, args),
        Command::Conflicts => conflicts::conflicts(&out),
        Command::Resolve(args) => conflicts::resolve(&out, args),
        Command::Wanted(args) => placement::wanted(&out, args),
        Command::Group(args) => placement::group(&out, args),
        Command::Numcopies(args) => placement::numcopies(&out, args),
        Command::Peer(command) => peer::run(&out, command),
        Command::Invite(args) => pair::invite(&out, args),
        Command::Join(args) => pair::join(&out, args),
        Command::Config(args) => config::config(&out, args),
        Command::Serve(args) => serve::serve(&out, args),
        Command::Sync(args) => sync::sync(&out, args),
        Command::Get(args) => transfer::get_files(&out, args),
        Command::Drop(args) => transfer::drop_local(&out, args),
        Command::Trash(args) => trash::trash(&out, args),
        Command::Demo(args) => demo::demo(&out, args),
        Command::Completions(args) => docs::completions(args),
        Command::Man(args) => docs::man(&out, args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            out.error(&e);
            ExitCode::FAILURE
        }
    }
}

/// The runtime of a command that talks to peers: two workers, enough to
/// keep a transfer's lanes and its writer fed, and no more threads than
/// this kind of machine has cores.
fn network_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

fn init_logging(global: &GlobalArgs) {
    use tracing_subscriber::EnvFilter;
    let level = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // Colours only on a terminal: `serve`'s log often goes to a file.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi)
        .init();
}
