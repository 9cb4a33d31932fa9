//! This location's preferred-content rules applied to the state: its
//! expression (`harmony wanted`), the files they want here and lack, the
//! files held here they no longer want, and why, file by file.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Serialize;

use super::Repo;
use crate::error::{Error, Result};
use crate::model::preferred::{self, Decision, Explanation, Expr, FileFacts, Locations, Purpose};
use crate::model::{FileId, NodeId, Placed, RepoPath, Resolved};

/// The expression a location that never set one follows: its standard
/// groups' (for a location in none, `present`: it keeps what it holds and
/// fetches nothing new by rule).
const DEFAULT_WANTED: &str = "standard";

/// What this location's rules say of one file, and why.
#[derive(Clone, Debug, Serialize)]
pub struct RuleVerdict {
    /// The file.
    pub path: RepoPath,
    /// Whether this location holds its newest content.
    pub held: bool,
    /// Whether the rules want it here (for a held file, evaluated as if it
    /// were dropped: whether it is kept).
    pub wanted: bool,
    /// Term by term.
    pub explanation: Explanation,
}

/// The rules' inputs that are the same for every file.
struct Rules {
    me: NodeId,
    expr: Expr,
    groups: BTreeMap<NodeId, BTreeSet<String>>,
    numcopies: u32,
}

impl Rules {
    fn locations(&self) -> Locations<'_> {
        Locations {
            groups: &self.groups,
            numcopies: self.numcopies,
        }
    }
}

impl Repo {
    /// This location's preferred-content expression, as set (`None`: never
    /// set, and [`DEFAULT_WANTED`] applies).
    pub fn wanted_setting(&self) -> Result<Option<String>> {
        Ok(self.preferences()?.wanted)
    }

    /// Sets this location's preferred-content expression (stored in its
    /// canonical form), or with `None` goes back to the default. Nothing is
    /// stored when it does not parse.
    pub fn set_wanted(&mut self, text: Option<&str>) -> Result<Option<String>> {
        let canonical = text
            .map(|t| preferred::parse(t).map(|e| e.to_string()))
            .transpose()?;
        let stored = canonical.clone();
        self.update_preferences(|p| p.wanted = stored)?;
        Ok(canonical)
    }

    /// The files the rules want here and this location lacks (`get
    /// --auto`), and those held here they no longer want (`drop --auto`),
    /// among the files at or under `paths` (every file when empty).
    pub fn auto_targets(&self, paths: &[RepoPath]) -> Result<(HashSet<FileId>, Vec<FileId>)> {
        let rules = self.rules()?;
        let entries = self.store().placed_entries()?;
        let under = entries
            .iter()
            .filter(|e| paths.is_empty() || paths.iter().any(|p| e.path.starts_with(p)));
        let mut get = HashSet::new();
        let mut drop = Vec::new();
        for (placed, _, decision) in judged(&rules, under, |rules, facts, _| {
            preferred::decide(&rules.expr, rules.me, facts, &rules.locations())
        }) {
            match decision {
                Decision::Get => {
                    get.insert(placed.entry.id);
                }
                Decision::Drop => drop.push(placed.entry.id),
                Decision::Stay => {}
            }
        }
        Ok((get, drop))
    }

    /// Whether the rules want each of `entries` here (for a held file:
    /// whether they keep it), by file id; files whose newest version is not
    /// content (links, conflicts, deletions) are absent. The caller has the
    /// entries already (`ls`): they are not read again.
    pub(super) fn verdicts<'e>(
        &self,
        entries: impl IntoIterator<Item = &'e Placed>,
    ) -> Result<HashMap<FileId, bool>> {
        let rules = self.rules()?;
        Ok(judged(&rules, entries, |rules, facts, purpose| {
            preferred::wants(&rules.expr, rules.me, facts, &rules.locations(), purpose)
        })
        .into_iter()
        .map(|(placed, _, wanted)| (placed.entry.id, wanted))
        .collect())
    }

    /// Why the rules want `path` here or not, term by term.
    pub fn explain_wanted(&self, path: &RepoPath) -> Result<RuleVerdict> {
        let rules = self.rules()?;
        let entries = self.store().placed_entries()?;
        let file = entries.iter().filter(|e| e.path == *path);
        let (placed, held, explanation) = judged(&rules, file, |rules, facts, purpose| {
            preferred::explain(&rules.expr, rules.me, facts, &rules.locations(), purpose)
        })
        .into_iter()
        .next()
        .ok_or_else(|| Error::NoSuchFile(path.clone()))?;
        Ok(RuleVerdict {
            path: placed.path.clone(),
            held,
            wanted: explanation.value,
            explanation,
        })
    }

    fn rules(&self) -> Result<Rules> {
        let nodes = self.store().nodes()?;
        let me = self.node_id();
        let text = nodes
            .iter()
            .find(|n| n.id == me)
            .and_then(|n| n.preferences.wanted.clone())
            .unwrap_or_else(|| DEFAULT_WANTED.to_owned());
        Ok(Rules {
            me,
            expr: preferred::parse(&text)?,
            numcopies: crate::model::numcopies(&nodes),
            groups: nodes
                .into_iter()
                .map(|n| (n.id, n.preferences.groups))
                .collect(),
        })
    }
}

/// Each of `entries` whose newest version is content (not a link, not in
/// conflict), whether it is held here, and `judge`'s verdict: for a Get if
/// it is not held here, as if dropped if it is.
fn judged<'e, T>(
    rules: &Rules,
    entries: impl IntoIterator<Item = &'e Placed>,
    judge: impl Fn(&Rules, &FileFacts, Purpose) -> T,
) -> Vec<(&'e Placed, bool, T)> {
    let mut judged = Vec::new();
    for placed in entries {
        let Resolved::File(newest) = placed.entry.resolved() else {
            continue;
        };
        let Some((hash, size, _)) = newest.value.bytes() else {
            continue;
        };
        // The holders of this file's newest version, from the entry itself:
        // no query per file, as this runs after every commit of a serving
        // location. (A copy of the same bytes under another file counts
        // only when a drop confirms copies.)
        let holders: BTreeSet<NodeId> = placed.entry.holders_of(hash).copied().collect();
        let held = holders.contains(&rules.me);
        let facts = FileFacts {
            path: placed.path.as_str(),
            size,
            holders: &holders,
        };
        let purpose = if held { Purpose::Drop } else { Purpose::Get };
        judged.push((placed, held, judge(rules, &facts, purpose)));
    }
    judged
}
