//! Preferred content: the language in which each location says which files
//! it wants (git-annex's subset, issue #13), and its evaluation. Pure: the
//! caller gives what the replicated state knows of a file and of the
//! locations, and gets a yes or no (or, with [`explain`], the reasons).
//!
//! # The language
//!
//! An expression is terms joined by `and`, `or` and `not`, with
//! parentheses. `not` binds tightest, then `and`, then `or`: `a or b and
//! not c` is `a or (b and (not c))`. Terms must be joined by an operator:
//! git-annex reads `a b` as `a and b`, Harmony refuses it (a forgotten `or`
//! would otherwise mean `and` silently).
//!
//! | term | true when |
//! | --- | --- |
//! | `include=GLOB` | the file's path matches GLOB |
//! | `exclude=GLOB` | the file's path does not match GLOB |
//! | `largerthan=SIZE` | the file is larger than SIZE bytes |
//! | `smallerthan=SIZE` | the file is smaller than SIZE bytes |
//! | `copies=N` | N or more locations hold the file |
//! | `copies=GROUP:N` | N or more locations of GROUP hold it |
//! | `lackingcopies=N` | N or more copies must be made to reach numcopies |
//! | `inallgroup=GROUP` | GROUP has locations, and every one holds the file |
//! | `present` | this location holds the file |
//! | `anything` / `nothing` | always / never |
//! | `standard` | the expression of this location's standard group(s) |
//!
//! *Globs* match the whole path from the repository root (`/`-separated,
//! case-sensitive): `*`, `?` and `[abc]` match within one folder or file
//! name, `**` as a whole component matches any number of folders, `{a,b}`
//! either, `\` escapes. So `*.mp3` is an mp3 at the root only and
//! `**/*.mp3` one anywhere (git-annex's `*` also crosses `/`: write `**`
//! there). A glob with spaces or parentheses is written in double quotes,
//! where `\"` is a quote and `\\` a backslash: `include="My Music/**"`.
//!
//! *Sizes* are as [`crate::model::parse_size`] reads them: `10MB`, `1GiB`,
//! `500k`, `0` (decimal k, M, G, T; binary KiB, MiB, GiB, TiB).
//!
//! *Group names* are 1 to [`MAX_GROUP_NAME`] ASCII letters, digits, `-`,
//! `_` and `.` ([`is_group_name`]); a location missing from
//! [`Locations::groups`] is in no group. A group nobody is in makes
//! `inallgroup=` false: "every location of no locations holds it" would
//! make `not inallgroup=backup` drop files when there is no backup.
//!
//! # Get and drop
//!
//! [`wants`] answers for [`Purpose::Get`] on the state as it is. For
//! [`Purpose::Drop`] it answers as if `me` had already dropped the file
//! (git-annex's rule): `me` is not counted by `copies=`, `copies=GROUP:`,
//! `lackingcopies=` and `inallgroup=` (where `me`, if in GROUP, counts as
//! not holding). `present` is not affected: it is whether `me` holds the
//! file now, under both purposes, so a drop (asked of a held file) sees it
//! true and `manual` keeps what it holds.
//!
//! Why this reaches a fixed point: a location that lacks a file sees the
//! same holders for Get as it would, after getting it, for Drop (itself not
//! counted either way); only `present` differs, false before and true
//! after. So for any expression in which `present` (or `standard`, which
//! may stand for it) appears only under an even number of `not`s (all the
//! standard expressions, and `standard` itself), getting a file never
//! makes it unwanted, and dropping one never makes it wanted again, until
//! another location changes something. (`not present` flips by design, as
//! in git-annex.) The property tests check this over random holder sets.
//!
//! # Standard groups
//!
//! | group | expression |
//! | --- | --- |
//! | `client` | `exclude=**/archive/** or not copies=archive:1` |
//! | `backup` | `anything` |
//! | `archive` | `present or not copies=archive:1` |
//! | `source` | `not copies=1` |
//! | `manual` | `present` |
//! | `unwanted` | `nothing` |
//!
//! * `client` wants everything except files under a folder named `archive`
//!   (at any depth) that some archive location holds; once one does, a
//!   client drops them.
//! * `archive` gets what no archive location holds, and keeps what it
//!   holds. It never drops by rule: two archives that got a file at the
//!   same time would otherwise each see the other's copy, both drop, and
//!   both get it again, in a loop that can lose every archive copy in
//!   between. Keeping both copies is the safe end of that race; the user
//!   can still `drop` one by hand.
//! * `source` drops its copy once another location holds one (and the
//!   drop still needs numcopies live copies elsewhere).
//! * `manual` gets nothing by itself and keeps what the user got.
//!
//! `standard` is the `or` of the expressions of the location's standard
//! groups (it wants what any of them wants: keeping more is the safe side),
//! and `manual`'s when it is in none.
//!
//! # Limits
//!
//! Expressions travel between locations, so a hostile one must fail to
//! parse, never exhaust us: at most [`MAX_EXPR_BYTES`] bytes, [`MAX_DEPTH`]
//! nested `(` and `not`, counts up to `u32::MAX`, sizes up to `u64::MAX`.
//! Evaluation recurses no deeper than the nesting, and allocates nothing.

mod eval;
mod expr;
mod groups;
mod parse;

#[cfg(test)]
mod tests;

pub use eval::{
    decide, explain, may_drop, wants, Decision, Explanation, FileFacts, Locations, Purpose,
};
pub use expr::Expr;
pub use groups::{standard_expression, STANDARD_GROUPS};
pub use parse::{is_group_name, parse, ParseError, MAX_DEPTH, MAX_EXPR_BYTES, MAX_GROUP_NAME};
