//! Property tests of the language: printing and parsing are inverse, `not`
//! negates, explain agrees with wants, and the get and drop decisions reach
//! a fixed point for the standard groups (and for every expression in which
//! `present` is never negated) over random holders and group memberships.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::expr::{Expr, Node, Term};
use super::parse::compile_glob;
use super::*;
use crate::model::NodeId;

const LOCATIONS: u8 = 5;
const GROUPS: &[&str] = &[
    "client", "backup", "archive", "source", "manual", "unwanted", "x",
];
const PATHS: &[&str] = &[
    "a.mp3",
    "music/a.mp3",
    "archive/a.mp3",
    "x/archive/y/b.mkv",
    "My Music/a.flac",
    "(x)",
    "a\"b",
];

fn node(i: u8) -> NodeId {
    NodeId([i; 32])
}

fn glob() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "**/*.mp3",
            "*.mp3",
            "music/*",
            "**/archive/**",
            "*",
            "a?c",
            "{x,y}/**",
            "My Music/**",
            "a\"b",
            "(x)",
            "\\*",
            "\"q",
            "[ab]*",
        ])
        .prop_map(str::to_owned),
        "[a-z*?/ ()\"\\\\{},.]{1,10}".prop_filter("a glob", |text| compile_glob(text).is_ok()),
    ]
}

fn group() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(GROUPS.to_vec()).prop_map(str::to_owned),
        "[a-zA-Z0-9._-]{1,10}",
    ]
}

/// Counts: mostly small, so they matter to the holders drawn.
fn count() -> impl Strategy<Value = u32> {
    prop_oneof![4 => 0u32..6, 1 => any::<u32>()]
}

fn size() -> impl Strategy<Value = u64> {
    prop_oneof![
        prop::sample::select(vec![0u64, 1, 1000, 1 << 20, 10_000_000]),
        any::<u64>(),
    ]
}

fn term() -> impl Strategy<Value = Term> {
    prop_oneof![
        glob().prop_map(|text| Term::Include(compile_glob(&text).unwrap())),
        glob().prop_map(|text| Term::Exclude(compile_glob(&text).unwrap())),
        size().prop_map(Term::LargerThan),
        size().prop_map(Term::SmallerThan),
        count().prop_map(Term::Copies),
        (group(), count()).prop_map(|(group, copies)| Term::GroupCopies { group, copies }),
        count().prop_map(Term::LackingCopies),
        group().prop_map(Term::InAllGroup),
        Just(Term::Present),
        Just(Term::Anything),
        Just(Term::Nothing),
        Just(Term::Standard),
    ]
}

/// Random trees, nested at most 4 deep (well within `MAX_DEPTH`).
fn tree() -> impl Strategy<Value = Node> {
    term()
        .prop_map(Node::Term)
        .prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                inner.clone().prop_map(|node| Node::Not(Box::new(node))),
                prop::collection::vec(inner.clone(), 2..4).prop_map(Node::And),
                prop::collection::vec(inner, 2..4).prop_map(Node::Or),
            ]
        })
}

/// Whether `present` appears in `node` only under an even number of `not`s
/// (`standard` may stand for `present`).
/// Whether a rule counts no copies (`copies=`, `copies=group:`,
/// `lackingcopies=`, `inallgroup=`). A rule of a user's own that counts
/// copies can feed
/// back on another location's: an archive wanting a file once two *other*
/// locations hold it, and a client wanting archive/ files until an archive
/// holds them, take turns getting and dropping it for ever (as they would
/// under git-annex). The standard rules count copies only in ways that
/// settle, so they stay in the histories.
fn counts_no_copies(node: &Node) -> bool {
    match node {
        Node::Term(
            Term::Copies(_)
            | Term::GroupCopies { .. }
            | Term::LackingCopies(_)
            | Term::InAllGroup(_),
        ) => false,
        Node::Term(_) => true,
        Node::Not(inner) => counts_no_copies(inner),
        Node::And(nodes) | Node::Or(nodes) => nodes.iter().all(counts_no_copies),
    }
}

fn present_is_positive(node: &Node, negated: bool) -> bool {
    match node {
        Node::Term(Term::Present | Term::Standard) => !negated,
        Node::Term(_) => true,
        Node::Not(inner) => present_is_positive(inner, !negated),
        Node::And(nodes) | Node::Or(nodes) => nodes.iter().all(|n| present_is_positive(n, negated)),
    }
}

/// A random repository: every location's groups, numcopies, and a file.
#[derive(Clone, Debug)]
struct World {
    groups: BTreeMap<NodeId, BTreeSet<String>>,
    numcopies: u32,
    path: &'static str,
    size: u64,
    holders: BTreeSet<NodeId>,
}

fn world() -> impl Strategy<Value = World> {
    let memberships = prop::collection::vec(
        prop::sample::subsequence(GROUPS.to_vec(), 0..3),
        LOCATIONS as usize,
    );
    let holders =
        prop::collection::btree_set((1..=LOCATIONS).prop_map(node), 0..=LOCATIONS as usize);
    (
        memberships,
        0u32..4,
        prop::sample::select(PATHS.to_vec()),
        size(),
        holders,
    )
        .prop_map(|(memberships, numcopies, path, size, holders)| World {
            groups: memberships
                .into_iter()
                .zip(1..)
                .map(|(groups, i)| (node(i), groups.into_iter().map(str::to_owned).collect()))
                .collect(),
            numcopies,
            path,
            size,
            holders,
        })
}

impl World {
    /// Whether `me` wants the file when `holders` hold it.
    fn wants(&self, expr: &Expr, me: NodeId, holders: &BTreeSet<NodeId>, purpose: Purpose) -> bool {
        let file = FileFacts {
            path: self.path,
            size: self.size,
            holders,
        };
        let locations = Locations {
            groups: &self.groups,
            numcopies: self.numcopies,
        };
        wants(expr, me, &file, &locations, purpose)
    }

    /// The get-then-drop check for `me`: if `me`, lacking the file, wants
    /// to get it, then having got it, it wants to keep it. (Read backwards,
    /// the same: a location that drops a file does not want it back.)
    fn settles(&self, expr: &Expr, me: NodeId) -> bool {
        let mut lacking = self.holders.clone();
        lacking.remove(&me);
        let mut got = lacking.clone();
        got.insert(me);
        !self.wants(expr, me, &lacking, Purpose::Get) || self.wants(expr, me, &got, Purpose::Drop)
    }

    fn with_groups(&self, me: NodeId, groups: &[&str]) -> World {
        let mut world = self.clone();
        world
            .groups
            .insert(me, groups.iter().map(|g| (*g).to_owned()).collect());
        world
    }
}

fn standard() -> Expr {
    parse("standard").unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn printing_and_parsing_are_inverse(root in tree()) {
        let expr = Expr { root };
        let text = expr.to_string();
        prop_assert_eq!(parse(&text), Ok(expr), "{}", text);
    }

    #[test]
    fn any_text_parses_or_errs_without_panicking(text in "[a-z=():\" \\\\*.0-9]{0,60}|\\PC{0,60}") {
        if let Ok(expr) = parse(&text) {
            prop_assert_eq!(parse(&expr.to_string()), Ok(expr));
        }
    }

    #[test]
    fn not_negates_and_explain_agrees(root in tree(), world in world(), me in 1..=LOCATIONS, drop: bool) {
        let purpose = if drop { Purpose::Drop } else { Purpose::Get };
        let expr = Expr { root: root.clone() };
        let negated = Expr { root: Node::Not(Box::new(root)) };
        let (me, holders) = (node(me), &world.holders);
        let value = world.wants(&expr, me, holders, purpose);
        prop_assert_eq!(world.wants(&negated, me, holders, purpose), !value);
        let file = FileFacts { path: world.path, size: world.size, holders };
        let locations = Locations { groups: &world.groups, numcopies: world.numcopies };
        prop_assert_eq!(explain(&expr, me, &file, &locations, purpose).value, value);
    }

    #[test]
    fn the_standard_groups_reach_a_fixed_point(world in world(), me in 1..=LOCATIONS) {
        let me = node(me);
        for group in STANDARD_GROUPS {
            prop_assert!(world.settles(&standard_expression(group).unwrap(), me), "{}", group);
            prop_assert!(world.with_groups(me, &[group]).settles(&standard(), me), "{}", group);
        }
        // Whatever groups `me` is in (the world drew them).
        prop_assert!(world.settles(&standard(), me));
    }

    #[test]
    fn any_rule_without_a_negated_present_reaches_a_fixed_point(
        root in tree().prop_filter("present never negated", |root| present_is_positive(root, false)),
        world in world(),
        me in 1..=LOCATIONS,
    ) {
        let expr = Expr { root };
        prop_assert!(world.settles(&expr, node(me)), "{}", expr);
    }

    #[test]
    fn an_archive_keeps_what_it_holds_so_two_never_both_drop(world in world(), me in 1..=LOCATIONS) {
        let me = node(me);
        let mut holders = world.holders.clone();
        holders.insert(me);
        let world = world.with_groups(me, &["archive"]);
        prop_assert!(world.wants(&standard(), me, &holders, Purpose::Drop));
        let others_archived = holders
            .iter()
            .any(|h| *h != me && world.groups.get(h).is_some_and(|g| g.contains("archive")));
        holders.remove(&me);
        prop_assert_eq!(world.wants(&standard(), me, &holders, Purpose::Get), !others_archived);
    }

    #[test]
    fn a_source_drops_once_another_copy_exists(world in world(), me in 1..=LOCATIONS) {
        let me = node(me);
        let world = world.with_groups(me, &["source"]);
        let mut holders = world.holders.clone();
        holders.insert(me);
        let keeps = world.wants(&standard(), me, &holders, Purpose::Drop);
        prop_assert_eq!(keeps, holders.len() == 1);
    }

    #[test]
    fn a_client_drops_archived_files_once_an_archive_holds_them(world in world(), me in 1..=LOCATIONS) {
        let me = node(me);
        let world = world.with_groups(me, &["client"]);
        let mut holders = world.holders.clone();
        holders.insert(me);
        let keeps = world.wants(&standard(), me, &holders, Purpose::Drop);
        let under_archive = world.path.starts_with("archive/") || world.path.contains("/archive/");
        let archived = holders
            .iter()
            .any(|h| *h != me && world.groups.get(h).is_some_and(|g| g.contains("archive")));
        prop_assert_eq!(keeps, !(under_archive && archived));
    }
}

/// Random histories on 4 locations (issue 13): each location has random
/// groups and a random rule (in which `present` is never negated and no
/// copies are counted: see [`counts_no_copies`]), the
/// repository a random numcopies, and each file starts at random holders
/// (at least one). Rounds of `get --auto` and `drop --auto` at random
/// locations follow, through [`decide`] and the drop gate [`may_drop`] that
/// the real commands use, a drop confirmed by every other holder (the best
/// case for a drop: the gate is what must hold). Then every location acts in
/// turn until nothing changes.
mod histories {
    use super::*;

    const HISTORY_LOCATIONS: u8 = 4;
    const HISTORY_FILES: usize = 6;

    #[derive(Clone, Debug)]
    struct History {
        rules: Vec<Expr>,
        groups: BTreeMap<NodeId, BTreeSet<String>>,
        numcopies: u32,
        files: Vec<(&'static str, u64, BTreeSet<NodeId>)>,
        rounds: Vec<(u8, bool)>,
    }

    fn history() -> impl Strategy<Value = History> {
        let rule = prop_oneof![
            2 => Just(parse("standard").unwrap()),
            1 => tree()
                .prop_filter("present never negated", |root| present_is_positive(root, false))
                .prop_filter("no copies counted", counts_no_copies)
                .prop_map(|root| Expr { root }),
        ];
        let location = 1..=HISTORY_LOCATIONS;
        let file = (
            prop::sample::select(PATHS.to_vec()),
            size(),
            prop::collection::btree_set(location.clone().prop_map(node), 1..=4),
        );
        (
            prop::collection::vec(rule, HISTORY_LOCATIONS as usize),
            prop::collection::vec(
                prop::sample::subsequence(GROUPS.to_vec(), 0..3),
                HISTORY_LOCATIONS as usize,
            ),
            1u32..4,
            prop::collection::vec(file, 1..=HISTORY_FILES),
            prop::collection::vec((location, any::<bool>()), 0..24),
        )
            .prop_map(|(rules, memberships, numcopies, files, rounds)| History {
                rules,
                groups: memberships
                    .into_iter()
                    .zip(1..)
                    .map(|(g, i)| (node(i), g.into_iter().map(str::to_owned).collect()))
                    .collect(),
                numcopies,
                files,
                rounds,
            })
    }

    impl History {
        /// One `get --auto` (or `drop --auto`) at location `at`; whether it
        /// changed anything. Checks the copy invariants of every drop.
        fn act(&mut self, at: u8, dropping: bool) -> Result<bool, TestCaseError> {
            let me = node(at);
            let expr = self.rules[at as usize - 1].clone();
            let mut changed = false;
            for (path, size, holders) in &mut self.files {
                let locations = Locations {
                    groups: &self.groups,
                    numcopies: self.numcopies,
                };
                let facts = FileFacts {
                    path,
                    size: *size,
                    holders,
                };
                match decide(&expr, me, &facts, &locations) {
                    Decision::Get if !dropping => {
                        holders.insert(me);
                        changed = true;
                    }
                    Decision::Drop if dropping => {
                        let before = holders.len();
                        let others = before - 1;
                        if may_drop(others, self.numcopies) {
                            holders.remove(&me);
                            changed = true;
                            prop_assert!(!holders.is_empty(), "a last copy dropped");
                            prop_assert!(
                                holders.len() >= (self.numcopies as usize).min(before),
                                "{path}: {} copies left of {before}, numcopies {}",
                                holders.len(),
                                self.numcopies
                            );
                        }
                    }
                    _ => {}
                }
            }
            Ok(changed)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn copies_are_kept_and_the_rules_reach_a_fixed_point(mut history in history()) {
            for (at, dropping) in history.rounds.clone() {
                history.act(at, dropping)?;
            }
            // Quiet: every location gets, then drops, in turn, until a
            // whole pass changes nothing.
            let mut passes = 0;
            loop {
                let mut changed = false;
                for at in 1..=HISTORY_LOCATIONS {
                    changed |= history.act(at, false)?;
                    changed |= history.act(at, true)?;
                }
                if !changed {
                    break;
                }
                passes += 1;
                prop_assert!(passes < 10, "no fixed point after {passes} passes: {history:?}");
            }
        }
    }
}
