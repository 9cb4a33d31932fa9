//! This location's preferred-content rules applied to the state: its
//! expression (`harmony wanted`), the files they want here and lack, the
//! files held here they no longer want, and why, file by file.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::Serialize;

use super::Repo;
use crate::error::{Error, Result};
use crate::model::preferred::{self, Decision, Explanation, Expr, FileFacts, Locations, Purpose};
use crate::model::{FileId, NodeId, Placed, RepoPath, Resolved};
use crate::store::Order;

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
pub(super) struct Rules {
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
        let mut get = HashSet::new();
        let mut drop = Vec::new();
        // Entry by entry: a serving location asks this after every change.
        self.store().each_placed(None, Order::Stored, |placed| {
            if !(paths.is_empty() || paths.iter().any(|p| placed.path.starts_with(p))) {
                return Ok(());
            }
            let decision = judge(&rules, &placed, |rules, facts, _| {
                preferred::decide(&rules.expr, rules.me, facts, &rules.locations())
            });
            match decision {
                Some((_, Decision::Get)) => {
                    get.insert(placed.entry.id);
                }
                Some((_, Decision::Drop)) => drop.push((placed.path, placed.entry.id)),
                Some((_, Decision::Stay)) | None => {}
            }
            Ok(())
        })?;
        drop.sort();
        Ok((get, drop.into_iter().map(|(_, id)| id).collect()))
    }

    /// This location's rules, read once for judging many files
    /// ([`wanted_here`]).
    pub(super) fn rules(&self) -> Result<Rules> {
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

    /// Why the rules want `path` here or not, term by term.
    pub fn explain_wanted(&self, path: &RepoPath) -> Result<RuleVerdict> {
        let rules = self.rules()?;
        let mut found = None;
        self.store()
            .each_placed(Some(path), Order::ByPath, |placed| {
                if found.is_none() && placed.path == *path {
                    found = judge(&rules, &placed, |rules, facts, purpose| {
                        preferred::explain(
                            &rules.expr,
                            rules.me,
                            facts,
                            &rules.locations(),
                            purpose,
                        )
                    })
                    .map(|(held, explanation)| (placed, held, explanation));
                }
                Ok(())
            })?;
        let (placed, held, explanation) = found.ok_or_else(|| Error::NoSuchFile(path.clone()))?;
        Ok(RuleVerdict {
            path: placed.path,
            held,
            wanted: explanation.value,
            explanation,
        })
    }
}

/// Whether the rules want `placed` here (for a held file: whether they
/// keep it); `None` when its newest version is not content (a link, a
/// conflict, a deletion), which the rules do not judge.
pub(super) fn wanted_here(rules: &Rules, placed: &Placed) -> Option<bool> {
    judge(rules, placed, |rules, facts, purpose| {
        preferred::wants(&rules.expr, rules.me, facts, &rules.locations(), purpose)
    })
    .map(|(_, wanted)| wanted)
}

/// For a file whose newest version is content: whether it is held here,
/// and `verdict` on it, for a Get if it is not held here, as if dropped if
/// it is.
fn judge<T>(
    rules: &Rules,
    placed: &Placed,
    verdict: impl Fn(&Rules, &FileFacts, Purpose) -> T,
) -> Option<(bool, T)> {
    let Resolved::File(newest) = placed.entry.resolved() else {
        return None;
    };
    let (hash, size, _) = newest.value.bytes()?;
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
    Some((held, verdict(rules, &facts, purpose)))
}
