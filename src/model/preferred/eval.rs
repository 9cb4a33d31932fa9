//! Evaluating an expression for one location and one file: [`wants`] for
//! the placement decisions (short-circuit, no allocation), [`explain`] for
//! people (every term, with what it saw).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use super::expr::{Expr, Node, Term};
use super::groups::{standard, FALLBACK, STANDARD_GROUPS};
use crate::model::NodeId;

/// What the rules know of one file (its current version).
#[derive(Clone, Copy, Debug)]
pub struct FileFacts<'a> {
    /// The file's path from the repository root, `/`-separated.
    pub path: &'a str,
    /// The size of its current version, in bytes.
    pub size: u64,
    /// The locations holding its current version.
    pub holders: &'a BTreeSet<NodeId>,
}

/// What the rules know of the repository's locations.
#[derive(Clone, Copy, Debug)]
pub struct Locations<'a> {
    /// Every location's groups (a location missing here is in none).
    pub groups: &'a BTreeMap<NodeId, BTreeSet<String>>,
    /// The repository's numcopies.
    pub numcopies: u32,
}

/// What a location is deciding about a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Purpose {
    /// Whether to get it (or, for a file it holds, whether it wants it now).
    Get,
    /// Whether to keep it: evaluated as if this location had dropped it.
    Drop,
}

/// Whether location `me` wants `file`: with [`Purpose::Get`] on the state
/// as it is, with [`Purpose::Drop`] as if `me` had already dropped it (the
/// module documentation says exactly what that changes).
pub fn wants(
    expr: &Expr,
    me: NodeId,
    file: &FileFacts,
    locations: &Locations,
    purpose: Purpose,
) -> bool {
    View::new(me, file, locations, purpose).eval(&expr.root)
}

/// What a location does about one file by its rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Decision {
    /// It lacks the file and wants it.
    Get,
    /// It holds the file and, as if it had dropped it, does not want it.
    /// (The drop itself still needs numcopies other copies confirmed.)
    Drop,
    /// Neither.
    Stay,
}

/// What location `me` does about `file`: [`wants`] for a get when it does
/// not hold the file, for a drop when it does. `get --auto`, `drop --auto`
/// and `serve` act on this.
pub fn decide(expr: &Expr, me: NodeId, file: &FileFacts, locations: &Locations) -> Decision {
    if file.holders.contains(&me) {
        if wants(expr, me, file, locations, Purpose::Drop) {
            Decision::Stay
        } else {
            Decision::Drop
        }
    } else if wants(expr, me, file, locations, Purpose::Get) {
        Decision::Get
    } else {
        Decision::Stay
    }
}

/// Whether a location may drop its copy once `confirmed` other locations
/// confirmed, live, that they hold it: as many as numcopies (never fewer
/// than one, so a last copy is never dropped).
pub fn may_drop(confirmed: usize, numcopies: u32) -> bool {
    confirmed >= numcopies.max(1) as usize
}

/// Term by term, why `me` wants `file` or not (the same answer as
/// [`wants`], with every operand evaluated so each can be shown).
pub fn explain(
    expr: &Expr,
    me: NodeId,
    file: &FileFacts,
    locations: &Locations,
    purpose: Purpose,
) -> Explanation {
    View::new(me, file, locations, purpose).explain(&expr.root)
}

/// One node of an explanation: a sub-expression as printed, its value, what
/// a term saw, and the explanations of its operands. `Display` prints the
/// tree, one sub-expression a line, operands indented.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// The sub-expression, printed canonically.
    pub term: String,
    /// Its value.
    pub value: bool,
    /// For a term, what it saw (e.g. "2 copies, not counting this one").
    pub why: Option<String>,
    /// The operands of `and`, `or` and `not`, and for `standard` the
    /// expressions of the location's standard groups.
    pub parts: Vec<Explanation>,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, 0)
    }
}

impl Explanation {
    fn write(&self, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        let value = if self.value { "yes" } else { "no " };
        write!(
            f,
            "{:indent$}{value}  {}",
            "",
            self.term,
            indent = 2 * depth
        )?;
        if let Some(why) = &self.why {
            write!(f, "  ({why})")?;
        }
        writeln!(f)?;
        self.parts
            .iter()
            .try_for_each(|part| part.write(f, depth + 1))
    }
}

/// The state as one location sees it for one decision.
struct View<'a> {
    me: NodeId,
    file: &'a FileFacts<'a>,
    locations: &'a Locations<'a>,
    purpose: Purpose,
}

impl<'a> View<'a> {
    fn new(
        me: NodeId,
        file: &'a FileFacts<'a>,
        locations: &'a Locations<'a>,
        purpose: Purpose,
    ) -> Self {
        View {
            me,
            file,
            locations,
            purpose,
        }
    }

    fn eval(&self, node: &Node) -> bool {
        match node {
            Node::Term(Term::Standard) => self.standard().any(|(_, expr)| self.eval(&expr.root)),
            Node::Term(term) => self.term(term),
            Node::Not(inner) => !self.eval(inner),
            Node::And(operands) => operands.iter().all(|node| self.eval(node)),
            Node::Or(operands) => operands.iter().any(|node| self.eval(node)),
        }
    }

    fn explain(&self, node: &Node) -> Explanation {
        let (why, parts) = match node {
            Node::Term(Term::Standard) => {
                let groups: Vec<&str> = self.standard().map(|(name, _)| name).collect();
                let why = if self.in_standard_group() {
                    format!("this location is in {}", groups.join(", "))
                } else {
                    format!("this location is in no standard group: as {FALLBACK}")
                };
                let parts = self.standard().map(|(_, expr)| self.explain(&expr.root));
                (Some(why), parts.collect())
            }
            Node::Term(term) => (Some(self.why(term)), Vec::new()),
            Node::Not(inner) => (None, vec![self.explain(inner)]),
            Node::And(operands) | Node::Or(operands) => (
                None,
                operands.iter().map(|node| self.explain(node)).collect(),
            ),
        };
        Explanation {
            term: node.to_string(),
            value: self.eval(node),
            why,
            parts,
        }
    }

    /// The value of a term other than `standard`.
    fn term(&self, term: &Term) -> bool {
        match term {
            Term::Include(glob) => glob.matcher.is_match(self.file.path),
            Term::Exclude(glob) => !glob.matcher.is_match(self.file.path),
            Term::LargerThan(bytes) => self.file.size > *bytes,
            Term::SmallerThan(bytes) => self.file.size < *bytes,
            Term::Copies(n) => self.copies() >= *n as usize,
            Term::GroupCopies { group, copies } => self.group_copies(group) >= *copies as usize,
            Term::LackingCopies(n) => self.lacking() >= *n,
            Term::InAllGroup(group) => {
                let (members, holding) = self.group_holding(group);
                members > 0 && holding == members
            }
            Term::Present => self.present(),
            Term::Anything => true,
            Term::Nothing | Term::Standard => false,
        }
    }

    /// What a term other than `standard` saw, for [`explain`].
    fn why(&self, term: &Term) -> String {
        let others = match self.purpose {
            Purpose::Get => "",
            Purpose::Drop => ", not counting this one",
        };
        let path = self.file.path;
        match term {
            Term::Include(glob) | Term::Exclude(glob) => {
                let does = if glob.matcher.is_match(path) {
                    "matches"
                } else {
                    "does not match"
                };
                format!("{path} {does} {}", glob.text)
            }
            Term::LargerThan(_) | Term::SmallerThan(_) => {
                format!("the file has {}", plural(self.file.size, "byte"))
            }
            Term::Copies(_) => format!("{}{others}", plural(self.copies() as u64, "copy")),
            Term::GroupCopies { group, .. } => format!(
                "{} in group {group}{others}",
                plural(self.group_copies(group) as u64, "copy"),
            ),
            Term::LackingCopies(_) => format!(
                "numcopies is {}, {}{others}: {} lacking",
                self.locations.numcopies,
                plural(self.copies() as u64, "copy"),
                self.lacking(),
            ),
            Term::InAllGroup(group) => match self.group_holding(group) {
                (0, _) => format!("no location is in group {group}"),
                (members, holding) => format!(
                    "{holding} of the {} in group {group} {}{}",
                    plural(members as u64, "location"),
                    if holding == 1 { "holds it" } else { "hold it" },
                    if self.is_member(&self.me, group) {
                        others
                    } else {
                        ""
                    },
                ),
            },
            Term::Present if self.present() => "held here".to_owned(),
            Term::Present => "not held here".to_owned(),
            Term::Anything => "always".to_owned(),
            Term::Nothing | Term::Standard => "never".to_owned(),
        }
    }

    /// The holders that count: all of them for a get; all but `me` for a
    /// drop, which is evaluated as if `me` had dropped the file already.
    fn counted(&self) -> impl Iterator<Item = &'a NodeId> + '_ {
        let me = self.me;
        let drop = self.purpose == Purpose::Drop;
        self.file
            .holders
            .iter()
            .filter(move |holder| !(drop && **holder == me))
    }

    fn copies(&self) -> usize {
        self.counted().count()
    }

    fn group_copies(&self, group: &str) -> usize {
        self.counted()
            .filter(|holder| self.is_member(holder, group))
            .count()
    }

    /// How many copies numcopies still needs.
    fn lacking(&self) -> u32 {
        let copies = u32::try_from(self.copies()).unwrap_or(u32::MAX);
        self.locations.numcopies.saturating_sub(copies)
    }

    /// The locations in `group`, and how many of them count as holders.
    fn group_holding(&self, group: &str) -> (usize, usize) {
        let members = self
            .locations
            .groups
            .iter()
            .filter(|(_, groups)| groups.contains(group));
        let mut counted = self.counted().peekable();
        // Both walk node ids in order, so one merge-like pass counts them.
        let (mut total, mut holding) = (0, 0);
        for (node, _) in members {
            total += 1;
            while counted.next_if(|holder| *holder < node).is_some() {}
            if counted.next_if_eq(&node).is_some() {
                holding += 1;
            }
        }
        (total, holding)
    }

    fn is_member(&self, node: &NodeId, group: &str) -> bool {
        self.locations
            .groups
            .get(node)
            .is_some_and(|groups| groups.contains(group))
    }

    /// Whether `me` holds the file now. Not as if dropped: a drop is only
    /// considered for a file held here, and the question it asks is whether
    /// to keep it (otherwise `manual`, which is `present`, would drop all).
    fn present(&self) -> bool {
        self.file.holders.contains(&self.me)
    }

    fn in_standard_group(&self) -> bool {
        STANDARD_GROUPS
            .iter()
            .any(|group| self.is_member(&self.me, group))
    }

    /// The standard groups `me` is in with their expressions, in the order
    /// of [`STANDARD_GROUPS`]; [`FALLBACK`]'s when it is in none.
    fn standard(&self) -> impl Iterator<Item = (&'static str, &'static Expr)> + '_ {
        let none = !self.in_standard_group();
        STANDARD_GROUPS
            .iter()
            .filter(move |group| {
                if none {
                    **group == FALLBACK
                } else {
                    self.is_member(&self.me, group)
                }
            })
            .filter_map(|group| Some((*group, standard(group)?)))
    }
}

/// `n` and `noun`, with the noun's plural (`copy`: `copies`) unless n is 1.
fn plural(n: u64, noun: &str) -> String {
    match (n, noun.strip_suffix('y')) {
        (1, _) => format!("1 {noun}"),
        (_, Some(stem)) => format!("{n} {stem}ies"),
        _ => format!("{n} {noun}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::preferred::parse;

    fn node(i: u8) -> NodeId {
        NodeId([i; 32])
    }

    /// Locations 1 and 2 are clients, 3 an archive, 4 a backup and an
    /// archive; 5 is in no group.
    fn groups() -> BTreeMap<NodeId, BTreeSet<String>> {
        [
            (1, "client"),
            (2, "client"),
            (3, "archive"),
            (4, "backup"),
            (4, "archive"),
        ]
        .into_iter()
        .fold(BTreeMap::new(), |mut groups, (i, group)| {
            groups
                .entry(node(i))
                .or_insert_with(BTreeSet::new)
                .insert(group.to_owned());
            groups
        })
    }

    /// Whether location `me` wants `path` (of `size` bytes, held by
    /// `holders`) by the rule `text`, for `purpose`, with numcopies 2.
    fn wanted(text: &str, me: u8, path: &str, size: u64, holders: &[u8], purpose: Purpose) -> bool {
        let holders: BTreeSet<NodeId> = holders.iter().map(|i| node(*i)).collect();
        let file = FileFacts {
            path,
            size,
            holders: &holders,
        };
        let groups = groups();
        let locations = Locations {
            groups: &groups,
            numcopies: 2,
        };
        let expr = parse(text).unwrap();
        let answer = wants(&expr, node(me), &file, &locations, purpose);
        let explained = explain(&expr, node(me), &file, &locations, purpose);
        assert_eq!(explained.value, answer, "{text}: explain agrees with wants");
        answer
    }

    fn get(text: &str, holders: &[u8]) -> bool {
        wanted(text, 1, "music/a.mp3", 5_000_000, holders, Purpose::Get)
    }

    fn keep(text: &str, holders: &[u8]) -> bool {
        wanted(text, 1, "music/a.mp3", 5_000_000, holders, Purpose::Drop)
    }

    #[test]
    fn globs_match_the_whole_path_and_star_stays_in_one_folder() {
        let path = |text: &str, path: &str| wanted(text, 1, path, 0, &[], Purpose::Get);
        assert!(path("include=**/*.mp3", "music/a.mp3"));
        assert!(path("include=**/*.mp3", "a.mp3"));
        assert!(!path("include=*.mp3", "music/a.mp3"));
        assert!(path("include=*.mp3", "a.mp3"));
        assert!(path("include=music/*", "music/a.mp3"));
        assert!(!path("include=music/*", "music/old/a.mp3"));
        assert!(path("include=music/**", "music/old/a.mp3"));
        assert!(!path("include=music/**", "musical/a.mp3"));
        assert!(path("include=**/archive/**", "archive/a"));
        assert!(path("include=**/archive/**", "x/y/archive/z/a"));
        assert!(!path("include=**/archive/**", "archived/a"));
        assert!(path("include=*.{jpg,png}", "b.png"));
        assert!(path("include=\"My Music/**\"", "My Music/a.flac"));
        assert!(!path("include=**/*.MP3", "music/a.mp3"));
        assert!(path("exclude=**/*.mp3", "music/a.flac"));
        assert!(!path("exclude=**/*.mp3", "music/a.mp3"));
    }

    #[test]
    fn sizes_compare_strictly() {
        let sized = |text: &str, size: u64| wanted(text, 1, "a", size, &[], Purpose::Get);
        assert!(sized("largerthan=10MB", 10_000_001));
        assert!(!sized("largerthan=10MB", 10_000_000));
        assert!(sized("smallerthan=1KiB", 1023));
        assert!(!sized("smallerthan=1KiB", 1024));
        assert!(!sized("smallerthan=0", 0));
        assert!(sized("largerthan=0", 1));
    }

    #[test]
    fn copies_count_every_holder_for_a_get_and_all_but_me_for_a_drop() {
        assert!(get("copies=2", &[1, 3]));
        assert!(!keep("copies=2", &[1, 3]));
        assert!(keep("copies=2", &[1, 2, 3]));
        assert!(get("copies=0", &[]));
        assert!(!get("copies=1", &[]));
        assert!(get("copies=archive:2", &[3, 4]));
        assert!(!get("copies=archive:2", &[2, 3]));
        assert!(get("copies=client:1", &[1]));
        assert!(!keep("copies=client:1", &[1, 3]));
        assert!(keep("copies=client:1", &[1, 2]));
        assert!(!get("copies=nobody:1", &[1, 2, 3, 4, 5]));
        // Holders the groups do not know count as copies, in no group.
        assert!(get("copies=2", &[5, 9]));
    }

    #[test]
    fn lackingcopies_counts_what_numcopies_still_needs() {
        // numcopies is 2.
        assert!(get("lackingcopies=2", &[]));
        assert!(get("lackingcopies=1", &[3]));
        assert!(!get("lackingcopies=1", &[1, 3]));
        assert!(keep("lackingcopies=1", &[1, 3]));
        assert!(!keep("lackingcopies=1", &[1, 2, 3]));
        assert!(get("lackingcopies=0", &[1, 2, 3, 4]));
        assert!(!get("lackingcopies=3", &[]));
    }

    #[test]
    fn inallgroup_needs_every_member_and_counts_me_as_dropped() {
        assert!(get("inallgroup=archive", &[3, 4]));
        assert!(!get("inallgroup=archive", &[3]));
        assert!(get("inallgroup=client", &[1, 2]));
        assert!(!keep("inallgroup=client", &[1, 2]));
        assert!(keep("inallgroup=archive", &[1, 3, 4]));
        assert!(!get("inallgroup=nobody", &[1, 2, 3, 4, 5]));
    }

    #[test]
    fn present_is_whether_me_holds_it_for_both_purposes() {
        assert!(get("present", &[1]));
        assert!(!get("present", &[2]));
        assert!(keep("present", &[1]));
        assert!(get("anything", &[]) && keep("anything", &[1]));
        assert!(!get("nothing", &[]) && !keep("nothing", &[1]));
    }

    #[test]
    fn operators_combine_terms() {
        assert!(get("present or anything and not nothing", &[]));
        assert!(!get("(present or anything) and nothing", &[]));
        assert!(get("not present", &[]));
        assert!(get(
            "include=**/*.mp3 and largerthan=1MB and not copies=3",
            &[2, 3]
        ));
        assert!(!get(
            "include=**/*.mp3 and largerthan=1MB and not copies=3",
            &[2, 3, 4]
        ));
    }

    #[test]
    fn standard_is_the_groups_expressions_or_manual() {
        let archived = |me: u8, holders: &[u8], purpose| {
            wanted("standard", me, "archive/2019/a.mkv", 1, holders, purpose)
        };
        // A client wants what is under archive/ until an archive holds it.
        assert!(archived(1, &[2], Purpose::Get));
        assert!(!archived(1, &[3], Purpose::Get));
        assert!(archived(1, &[1, 2], Purpose::Drop));
        assert!(!archived(1, &[1, 3], Purpose::Drop));
        assert!(wanted(
            "standard",
            1,
            "music/a.mp3",
            1,
            &[1, 3],
            Purpose::Drop
        ));
        // 4 is a backup and an archive: it wants what either wants.
        assert!(archived(4, &[3], Purpose::Get));
        // 5 is in no standard group: it keeps what it has, gets nothing.
        assert!(!archived(5, &[1], Purpose::Get));
        assert!(archived(5, &[1, 5], Purpose::Drop));
    }

    #[test]
    fn explain_shows_every_term_with_what_it_saw() {
        let holders: BTreeSet<NodeId> = [node(1), node(3)].into();
        let file = FileFacts {
            path: "archive/a.mkv",
            size: 1,
            holders: &holders,
        };
        let groups = groups();
        let locations = Locations {
            groups: &groups,
            numcopies: 2,
        };
        let expr = parse("standard and (lackingcopies=1 or inallgroup=client)").unwrap();
        let explained = explain(&expr, node(1), &file, &locations, Purpose::Drop);
        assert_eq!(
            explained.to_string(),
            "no   standard and (lackingcopies=1 or inallgroup=client)\n\
             \x20 no   standard  (this location is in client)\n\
             \x20   no   exclude=**/archive/** or not copies=archive:1\n\
             \x20     no   exclude=**/archive/**  (archive/a.mkv matches **/archive/**)\n\
             \x20     no   not copies=archive:1\n\
             \x20       yes  copies=archive:1  (1 copy in group archive, not counting this one)\n\
             \x20 yes  lackingcopies=1 or inallgroup=client\n\
             \x20   yes  lackingcopies=1  (numcopies is 2, 1 copy, not counting this one: 1 lacking)\n\
             \x20   no   inallgroup=client  (0 of the 2 locations in group client hold it, not counting this one)\n"
        );
        let lone = explain(
            &parse("standard").unwrap(),
            node(5),
            &file,
            &locations,
            Purpose::Get,
        );
        assert_eq!(
            lone.to_string(),
            "no   standard  (this location is in no standard group: as manual)\n\
             \x20 no   present  (not held here)\n"
        );
    }

    #[test]
    fn plural_nouns() {
        assert_eq!(plural(1, "copy"), "1 copy");
        assert_eq!(plural(0, "copy"), "0 copies");
        assert_eq!(plural(2, "byte"), "2 bytes");
    }
}
