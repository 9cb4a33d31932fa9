//! The standard groups: names with a built-in expression, written in the
//! language itself so the README can print them and `explain` can show
//! them term by term. Parsed once, then shared.

use std::sync::OnceLock;

use super::expr::Expr;
use super::parse::parse;

/// The standard groups and their expressions (the module documentation
/// says why each one reads as it does).
const EXPRESSIONS: &[(&str, &str)] = &[
    ("client", "exclude=**/archive/** or not copies=archive:1"),
    ("backup", "anything"),
    ("archive", "present or not copies=archive:1"),
    ("source", "not copies=1"),
    ("manual", "present"),
    ("unwanted", "nothing"),
];

/// The standard group whose expression `standard` means for a location in
/// no standard group: keep what it holds, get nothing by itself.
pub(super) const FALLBACK: &str = "manual";

/// The names of the standard groups.
pub const STANDARD_GROUPS: &[&str] = &[
    "client", "backup", "archive", "source", "manual", "unwanted",
];

/// The expression of the standard group `group`, or `None` when `group` is
/// not one.
pub fn standard_expression(group: &str) -> Option<Expr> {
    standard(group).cloned()
}

/// The parsed expression of the standard group `group`.
pub(super) fn standard(group: &str) -> Option<&'static Expr> {
    static PARSED: OnceLock<Vec<Expr>> = OnceLock::new();
    let parsed = PARSED.get_or_init(|| {
        EXPRESSIONS
            .iter()
            .map(|(name, text)| {
                parse(text).unwrap_or_else(|e| panic!("standard group {name}: {e}"))
            })
            .collect()
    });
    let index = EXPRESSIONS.iter().position(|(name, _)| *name == group)?;
    Some(&parsed[index])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_standard_group_has_a_canonical_expression() {
        let names: Vec<&str> = EXPRESSIONS.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, STANDARD_GROUPS);
        for (name, text) in EXPRESSIONS {
            assert_eq!(standard_expression(name).unwrap().to_string(), *text);
        }
        assert_eq!(standard_expression("laptop"), None);
        assert!(STANDARD_GROUPS.contains(&FALLBACK));
    }
}
