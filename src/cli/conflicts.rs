//! `conflicts` and `resolve`.

use clap::{Args, ValueEnum};
use harmony::{Keep, Repo};

use super::local::repo_path_arg;
use super::Output;

#[derive(Args, Debug)]
pub struct ResolveArgs {
    /// The conflicted file.
    path: String,
    /// Which version to keep: `local` (the one held here), a node's name or
    /// id, or `both` (each version under its own name).
    #[arg(long, value_name = "local|NODE|both")]
    keep: String,
}

/// The fixed choices of `--keep`; anything else names a node.
#[derive(Clone, Copy, ValueEnum)]
enum Fixed {
    Local,
    Both,
}

pub fn conflicts(out: &Output) -> anyhow::Result<()> {
    let repo = Repo::open(&out.dir)?;
    let conflicts = repo.conflicts()?;
    out.report(&conflicts, || {
        if conflicts.is_empty() {
            if !out.quiet {
                out!("no conflicts");
            }
            return;
        }
        for conflict in &conflicts {
            match conflict.kind {
                harmony::ConflictKind::Content => out!("{}", conflict.path),
                harmony::ConflictKind::Path => out!(
                    "{}: claimed by {} files (each kept, under the name shown)",
                    conflict.path,
                    conflict.sides.len()
                ),
            }
            for side in &conflict.sides {
                let who = side.name.clone().unwrap_or_else(|| side.node.clone());
                let at = match conflict.kind {
                    harmony::ConflictKind::Path => format!("  at {}", side.path),
                    harmony::ConflictKind::Content => String::new(),
                };
                out!(
                    "  {:<12} {:>10}  {}  {}{}{at}",
                    who,
                    indicatif::HumanBytes(side.size).to_string(),
                    format_time(side.time_ms),
                    side.hash.get(..16).unwrap_or("deleted"),
                    if side.here { "  (here)" } else { "" }
                );
            }
        }
        out!("settle each with `harmony resolve PATH --keep local|NODE|both`");
    })
}

pub fn resolve(out: &Output, args: ResolveArgs) -> anyhow::Result<()> {
    let mut repo = Repo::open(&out.dir)?;
    let path = repo_path_arg(&repo, out, &args.path)?
        .ok_or_else(|| anyhow::anyhow!("give the path of a conflicted file"))?;
    let keep = match Fixed::from_str(&args.keep, true) {
        Ok(Fixed::Local) => Keep::Local,
        Ok(Fixed::Both) => Keep::Both,
        Err(_) => Keep::Node(args.keep.clone()),
    };
    let done = repo.resolve(&path, &keep)?;
    out.report(&done, || {
        if out.quiet {
            return;
        }
        out!(
            "{}: kept {}",
            done.path,
            &done.kept[..16.min(done.kept.len())]
        );
        for created in &done.created {
            out!("{created}: the other version, under its own name");
        }
        out!("the resolution reaches other locations with the next sync");
    })
}

/// `YYYY-MM-DD HH:MM:SS` UTC, without a date crate.
pub(super) fn format_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_utc_times() {
        assert_eq!(super::format_time(0), "1970-01-01 00:00:00");
        assert_eq!(super::format_time(1_700_000_000_000), "2023-11-14 22:13:20");
    }
}
