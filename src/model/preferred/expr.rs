//! The parsed expression (its tree) and its canonical printing: the text
//! every location shows and stores for a rule, whatever spacing, extra
//! parentheses or size units the user typed.
//!
//! Printing keeps the tree's shape: `a and (b and c)` stays two nested
//! `and`s, so `parse(print(e)) == e` for every tree, not only for the
//! flattened ones the parser builds from a chain.

use std::fmt;

use globset::GlobMatcher;

use crate::model::format_size;

/// A parsed preferred-content expression. `Display` prints it canonically,
/// and the printed text parses back to an equal `Expr`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expr {
    pub(super) root: Node,
}

/// One node of the tree. `And` and `Or` hold two or more operands: a chain
/// `a and b and c` is one node, so evaluating a long chain never recurses
/// deeper than the parentheses and `not`s that were written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Node {
    Term(Term),
    Not(Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
}

/// The terms of the language (see the module documentation for what each
/// one means).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Term {
    Include(Glob),
    Exclude(Glob),
    LargerThan(u64),
    SmallerThan(u64),
    Copies(u32),
    GroupCopies { group: String, copies: u32 },
    LackingCopies(u32),
    InAllGroup(String),
    Present,
    Anything,
    Nothing,
    Standard,
}

/// A path glob as written, with its matcher compiled once at parse time so
/// evaluating a million files does not rebuild it. Two globs are equal when
/// their text is.
#[derive(Clone)]
pub(super) struct Glob {
    pub(super) text: String,
    pub(super) matcher: GlobMatcher,
}

impl PartialEq for Glob {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Glob {}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.text)
    }
}

/// The keywords that stand alone, and the keys that take `=VALUE`: the
/// parser reads and the printer writes these same names.
pub(super) const PRESENT: &str = "present";
pub(super) const ANYTHING: &str = "anything";
pub(super) const NOTHING: &str = "nothing";
pub(super) const STANDARD: &str = "standard";
pub(super) const INCLUDE: &str = "include";
pub(super) const EXCLUDE: &str = "exclude";
pub(super) const LARGER_THAN: &str = "largerthan";
pub(super) const SMALLER_THAN: &str = "smallerthan";
pub(super) const COPIES: &str = "copies";
pub(super) const LACKING_COPIES: &str = "lackingcopies";
pub(super) const IN_ALL_GROUP: &str = "inallgroup";

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.root.fmt(f)
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Term(term) => term.fmt(f),
            Node::Not(inner) => match **inner {
                Node::And(_) | Node::Or(_) => write!(f, "not ({inner})"),
                _ => write!(f, "not {inner}"),
            },
            // `and` binds tighter than `or`, so only an `or` operand of an
            // `and` needs parentheses for meaning; a nested `and` gets them
            // to keep its shape.
            Node::And(operands) => join(f, operands, "and", |_| true),
            Node::Or(operands) => join(f, operands, "or", |node| matches!(node, Node::Or(_))),
        }
    }
}

/// Writes `operands` separated by `op`, in parentheses those `and` and `or`
/// nodes for which `grouped` says so.
fn join(
    f: &mut fmt::Formatter<'_>,
    operands: &[Node],
    op: &str,
    grouped: impl Fn(&Node) -> bool,
) -> fmt::Result {
    for (i, node) in operands.iter().enumerate() {
        if i > 0 {
            write!(f, " {op} ")?;
        }
        match node {
            Node::And(_) | Node::Or(_) if grouped(node) => write!(f, "({node})")?,
            _ => write!(f, "{node}")?,
        }
    }
    Ok(())
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Term::Include(glob) => write!(f, "{INCLUDE}={}", quoted(&glob.text)),
            Term::Exclude(glob) => write!(f, "{EXCLUDE}={}", quoted(&glob.text)),
            Term::LargerThan(bytes) => write!(f, "{LARGER_THAN}={}", format_size(*bytes)),
            Term::SmallerThan(bytes) => write!(f, "{SMALLER_THAN}={}", format_size(*bytes)),
            Term::Copies(n) => write!(f, "{COPIES}={n}"),
            Term::GroupCopies { group, copies } => write!(f, "{COPIES}={group}:{copies}"),
            Term::LackingCopies(n) => write!(f, "{LACKING_COPIES}={n}"),
            Term::InAllGroup(group) => write!(f, "{IN_ALL_GROUP}={group}"),
            Term::Present => f.write_str(PRESENT),
            Term::Anything => f.write_str(ANYTHING),
            Term::Nothing => f.write_str(NOTHING),
            Term::Standard => f.write_str(STANDARD),
        }
    }
}

/// Whether a bare value ends at `c`: values run to a space or parenthesis.
pub(super) fn ends_value(c: char) -> bool {
    c.is_whitespace() || c == '(' || c == ')'
}

/// `value` as written in an expression: bare when it can be read back bare,
/// else in double quotes with `"` and `\` escaped by a backslash.
fn quoted(value: &str) -> String {
    if !value.is_empty() && !value.starts_with('"') && !value.contains(ends_value) {
        return value.to_owned();
    }
    let mut text = String::with_capacity(value.len() + 2);
    text.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            text.push('\\');
        }
        text.push(c);
    }
    text.push('"');
    text
}

#[cfg(test)]
mod tests {
    use super::quoted;

    #[test]
    fn quotes_only_values_that_need_it() {
        assert_eq!(quoted("**/*.mp3"), "**/*.mp3");
        assert_eq!(quoted("a\"b\\c"), "a\"b\\c");
        assert_eq!(quoted("My Music/**"), "\"My Music/**\"");
        assert_eq!(quoted("(1)\\*\""), "\"(1)\\\\*\\\"\"");
        assert_eq!(quoted("\"x"), "\"\\\"x\"");
    }
}
