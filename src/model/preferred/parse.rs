//! Text to [`Expr`]: a tokenizer that keeps each token's column, and a
//! precedence parser (`not` > `and` > `or`) whose errors say what was
//! expected where, and what was found instead.
//!
//! Expressions come from other locations too (they travel in the replicated
//! state), so the parser is bounded: the text's length, the nesting depth
//! of `(` and `not` (the only recursion, in the parser and in evaluation),
//! every number, and every group name.

use std::str::FromStr;

use globset::GlobBuilder;

use super::expr::*;
use crate::model::parse_size;

/// The longest expression text accepted, in bytes: far more than any rule a
/// person writes, and it bounds what a location's rules add to the state.
pub const MAX_EXPR_BYTES: usize = 4096;
/// The deepest nesting of `(` and `not` accepted.
pub const MAX_DEPTH: usize = 32;
/// The longest group name, in bytes.
pub const MAX_GROUP_NAME: usize = 64;

/// Whether `name` can be a group: 1 to [`MAX_GROUP_NAME`] ASCII letters,
/// digits, `-`, `_` and `.`, so that `copies=GROUP:N` reads unambiguously
/// and a group name never needs quoting.
pub fn is_group_name(name: &str) -> bool {
    (1..=MAX_GROUP_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Why a text is not an expression: what was expected at which column
/// (1-based, in characters) and what was found there, e.g.
/// ``expected `=` after `largerthan` at column 12, found `10MB` ``.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected} at column {column}, found {found}")]
pub struct ParseError {
    column: usize,
    expected: String,
    found: String,
}

impl ParseError {
    /// The 1-based column (in characters) the error points at.
    pub fn column(&self) -> usize {
        self.column
    }
}

/// Parses a preferred-content expression (see the module documentation for
/// the language).
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    if text.len() > MAX_EXPR_BYTES {
        return Err(ParseError {
            column: 1,
            expected: format!("an expression of at most {MAX_EXPR_BYTES} bytes"),
            found: format!("{} bytes", text.len()),
        });
    }
    let chars: Vec<char> = text.chars().collect();
    let tokens = lex(&chars)?;
    let mut parser = Parser {
        chars: &chars,
        tokens,
        next: 0,
        depth: 0,
    };
    let root = parser.or()?;
    match parser.peek() {
        None => Ok(Expr { root }),
        Some(token) => Err(match token.tok {
            Tok::Close => parser.error(
                Some(token),
                "the end of the expression",
                "`)` with no `(` to close".to_owned(),
            ),
            _ => parser.error(
                Some(token),
                "`and` or `or` between two terms",
                parser.found(Some(token)),
            ),
        }),
    }
}

impl FromStr for Expr {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Expr, ParseError> {
        parse(text)
    }
}

/// A token and the column it starts at.
#[derive(Debug)]
struct Token {
    tok: Tok,
    column: usize,
    /// The token as written, for errors.
    text: String,
}

#[derive(Debug)]
enum Tok {
    Open,
    Close,
    /// A run of characters without `=`: a keyword, an operator, or junk.
    Word(String),
    /// `KEY=VALUE`; the value with its quotes removed, and the column where
    /// it starts.
    Pair {
        key: String,
        value: String,
        quoted: bool,
        value_column: usize,
    },
}

/// Splits `chars` into tokens: parentheses, and runs of other characters up
/// to a space or parenthesis. A run with `=` is a pair; its value may be in
/// double quotes (then `\"` is a quote and `\\` a backslash) to hold
/// spaces and parentheses.
fn lex(chars: &[char]) -> Result<Vec<Token>, ParseError> {
    let mut tokens = Vec::new();
    let mut i = 0;
    let text = |from: usize, to: usize| chars[from..to].iter().collect::<String>();
    while i < chars.len() {
        let start = i;
        let tok = match chars[i] {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => {
                i += 1;
                Tok::Open
            }
            ')' => {
                i += 1;
                Tok::Close
            }
            _ => {
                while i < chars.len() && !ends_value(chars[i]) && chars[i] != '=' {
                    i += 1;
                }
                let key = text(start, i);
                if chars.get(i) != Some(&'=') {
                    Tok::Word(key)
                } else {
                    i += 1;
                    let value_column = i + 1;
                    let (value, quoted) = if chars.get(i) == Some(&'"') {
                        let (value, end) = unquote(chars, i)?;
                        i = end;
                        (value, true)
                    } else {
                        let from = i;
                        while i < chars.len() && !ends_value(chars[i]) {
                            i += 1;
                        }
                        (text(from, i), false)
                    };
                    Tok::Pair {
                        key,
                        value,
                        quoted,
                        value_column,
                    }
                }
            }
        };
        tokens.push(Token {
            tok,
            column: start + 1,
            text: text(start, i),
        });
    }
    Ok(tokens)
}

/// The quoted value opening at `chars[open]`, and the index after its
/// closing quote (which must end the token).
fn unquote(chars: &[char], open: usize) -> Result<(String, usize), ParseError> {
    let mut value = String::new();
    let mut i = open + 1;
    loop {
        match chars.get(i) {
            None => {
                return Err(ParseError {
                    column: chars.len() + 1,
                    expected: format!("`\"` to close the `\"` at column {}", open + 1),
                    found: END.to_owned(),
                })
            }
            Some('"') => break,
            Some('\\') if matches!(chars.get(i + 1), Some('"' | '\\')) => {
                value.push(chars[i + 1]);
                i += 2;
            }
            Some(&c) => {
                value.push(c);
                i += 1;
            }
        }
    }
    i += 1;
    match chars.get(i) {
        Some(&c) if !ends_value(c) => Err(ParseError {
            column: i + 1,
            expected: "a space or `)` after the closing `\"`".to_owned(),
            found: format!("`{}`", c.escape_debug()),
        }),
        _ => Ok((value, i)),
    }
}

const END: &str = "the end of the expression";
/// How many characters of a token an error quotes.
const SHOWN_CHARS: usize = 40;
const TERMS: &str = "a term (include=, exclude=, largerthan=, smallerthan=, copies=, \
                     lackingcopies=, inallgroup=, present, anything, nothing, standard, \
                     `not` or `(`)";

struct Parser<'a> {
    chars: &'a [char],
    tokens: Vec<Token>,
    next: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Word(w), .. }) if w == word)
    }

    /// `or` := `and` (`or` `and`)*
    fn or(&mut self) -> Result<Node, ParseError> {
        let first = self.and()?;
        self.chain(first, "or", Self::and, Node::Or)
    }

    /// `and` := `unary` (`and` `unary`)*
    fn and(&mut self) -> Result<Node, ParseError> {
        let first = self.unary()?;
        self.chain(first, "and", Self::unary, Node::And)
    }

    /// `first` and the operands that follow it joined by `op`, as one node.
    fn chain(
        &mut self,
        first: Node,
        op: &str,
        operand: fn(&mut Self) -> Result<Node, ParseError>,
        node: fn(Vec<Node>) -> Node,
    ) -> Result<Node, ParseError> {
        if !self.is_word(op) {
            return Ok(first);
        }
        let mut operands = vec![first];
        while self.is_word(op) {
            self.next += 1;
            operands.push(operand(self)?);
        }
        Ok(node(operands))
    }

    /// `unary` := `not` `unary` | `(` `or` `)` | term
    fn unary(&mut self) -> Result<Node, ParseError> {
        let Some(token) = self.peek() else {
            return Err(self.error(None, TERMS, END.to_owned()));
        };
        let opens = match &token.tok {
            Tok::Open => true,
            Tok::Word(w) if w == "not" => false,
            _ => return Ok(Node::Term(self.term()?)),
        };
        if self.depth == MAX_DEPTH {
            let found = self.found(Some(token));
            let expected = format!("at most {MAX_DEPTH} nested `(` and `not`");
            return Err(self.error(Some(token), &expected, found));
        }
        let open_column = token.column;
        self.next += 1;
        self.depth += 1;
        let node = if opens {
            let inner = self.or()?;
            match self.peek() {
                Some(Token {
                    tok: Tok::Close, ..
                }) => self.next += 1,
                next => {
                    let expected = match next {
                        None => format!("`)` to close the `(` at column {open_column}"),
                        Some(_) => "`and`, `or` or `)`".to_owned(),
                    };
                    return Err(self.error(next, &expected, self.found(next)));
                }
            }
            inner
        } else {
            Node::Not(Box::new(self.unary()?))
        };
        self.depth -= 1;
        Ok(node)
    }

    fn term(&mut self) -> Result<Term, ParseError> {
        let index = self.next;
        self.next += 1;
        let token = &self.tokens[index];
        match &token.tok {
            Tok::Word(word) => match word.as_str() {
                PRESENT => Ok(Term::Present),
                ANYTHING => Ok(Term::Anything),
                NOTHING => Ok(Term::Nothing),
                STANDARD => Ok(Term::Standard),
                INCLUDE | EXCLUDE | LARGER_THAN | SMALLER_THAN | COPIES | LACKING_COPIES
                | IN_ALL_GROUP => {
                    let next = self.peek();
                    let expected = format!("`=` after `{word}`");
                    Err(self.error(next, &expected, self.found(next)))
                }
                _ => Err(self.error(Some(token), TERMS, self.found(Some(token)))),
            },
            Tok::Pair {
                key,
                value,
                quoted,
                value_column,
            } => {
                let value = Value {
                    key,
                    text: value,
                    quoted: *quoted,
                    column: *value_column,
                    parser: self,
                };
                match key.as_str() {
                    INCLUDE => Ok(Term::Include(value.glob()?)),
                    EXCLUDE => Ok(Term::Exclude(value.glob()?)),
                    LARGER_THAN => Ok(Term::LargerThan(value.size()?)),
                    SMALLER_THAN => Ok(Term::SmallerThan(value.size()?)),
                    COPIES => match value.text.split_once(':') {
                        Some((group, copies)) => Ok(Term::GroupCopies {
                            group: value.group(group, 0)?,
                            copies: value.number(copies, group.chars().count() + 1)?,
                        }),
                        None => Ok(Term::Copies(value.number(value.text, 0)?)),
                    },
                    LACKING_COPIES => Ok(Term::LackingCopies(value.number(value.text, 0)?)),
                    IN_ALL_GROUP => Ok(Term::InAllGroup(value.group(value.text, 0)?)),
                    PRESENT | ANYTHING | NOTHING | STANDARD => {
                        let expected = format!("`{key}` alone (it takes no `=`)");
                        Err(self.error(Some(token), &expected, self.found(Some(token))))
                    }
                    _ => Err(self.error(Some(token), TERMS, self.found(Some(token)))),
                }
            }
            // `unary` reads `(`, so this is a `)` where a term belongs.
            Tok::Open | Tok::Close => Err(self.error(Some(token), TERMS, self.found(Some(token)))),
        }
    }

    /// An error at `token` (the end of the text when `None`).
    fn error(&self, token: Option<&Token>, expected: &str, found: String) -> ParseError {
        ParseError {
            column: token.map_or(self.chars.len() + 1, |t| t.column),
            expected: expected.to_owned(),
            found,
        }
    }

    /// `token` as an error names it.
    fn found(&self, token: Option<&Token>) -> String {
        token.map_or_else(|| END.to_owned(), |t| shown(&t.text))
    }

    /// What the text holds at `column`, when a value there is empty.
    fn found_at(&self, column: usize) -> String {
        match self.chars.get(column - 1) {
            None => END.to_owned(),
            Some(c) if c.is_whitespace() => "a space".to_owned(),
            Some(c) => format!("`{}`", c.escape_debug()),
        }
    }
}

/// Text as an error quotes it: in backticks, escaped, cut after
/// [`SHOWN_CHARS`] characters (a hostile token can be kilobytes long).
fn shown(text: &str) -> String {
    let cut: String = text.chars().take(SHOWN_CHARS).collect();
    let more = if cut.len() < text.len() { "…" } else { "" };
    format!("`{}{more}`", cut.escape_debug())
}

/// `text` as a path glob: `*`, `?` and `[...]` stay within one folder
/// name, `**` spans folders, `{a,b}` is either, `\\` escapes.
pub(super) fn compile_glob(text: &str) -> Result<Glob, globset::Error> {
    let glob = GlobBuilder::new(text)
        .literal_separator(true)
        .backslash_escape(true)
        .build()?;
    Ok(Glob {
        text: text.to_owned(),
        matcher: glob.compile_matcher(),
    })
}

/// The value of a `KEY=VALUE` pair, read as what its key takes.
struct Value<'a, 'p> {
    key: &'a str,
    text: &'a str,
    quoted: bool,
    column: usize,
    parser: &'a Parser<'p>,
}

impl Value<'_, '_> {
    /// An error for `part` of the value (starting `offset` characters in):
    /// `expected` after the key and what the value held up to `part`.
    fn error(&self, part: &str, offset: usize, expected: &str) -> ParseError {
        let before: String = self.text.chars().take(offset).collect();
        let (column, found) = match (part.is_empty(), self.quoted) {
            (true, true) => (self.column, "`\"\"`".to_owned()),
            (true, false) => (
                self.column + offset,
                self.parser.found_at(self.column + offset),
            ),
            (false, quoted) => (self.column + offset + usize::from(quoted), shown(part)),
        };
        ParseError {
            column,
            expected: format!("{expected} after `{}={before}`", self.key),
            found,
        }
    }

    fn glob(&self) -> Result<Glob, ParseError> {
        const EXPECTED: &str = "a path glob (e.g. `**/*.mp3`)";
        if self.text.is_empty() {
            return Err(self.error(self.text, 0, EXPECTED));
        }
        compile_glob(self.text).map_err(|e| {
            let mut error = self.error(self.text, 0, EXPECTED);
            error.found = format!("{} ({})", error.found, e.kind());
            error
        })
    }

    fn size(&self) -> Result<u64, ParseError> {
        parse_size(self.text)
            .ok_or_else(|| self.error(self.text, 0, "a size (e.g. `10MB`, `1GiB`, `500k`)"))
    }

    /// `part` (at `offset` in the value) as a number of copies.
    fn number(&self, part: &str, offset: usize) -> Result<u32, ParseError> {
        part.parse().map_err(|_| {
            let expected = if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
                format!("a number of copies up to {}", u32::MAX)
            } else {
                "a number of copies".to_owned()
            };
            self.error(part, offset, &expected)
        })
    }

    /// `part` (at `offset` in the value) as a group name.
    fn group(&self, part: &str, offset: usize) -> Result<String, ParseError> {
        if is_group_name(part) {
            return Ok(part.to_owned());
        }
        let expected =
            format!("a group name (1 to {MAX_GROUP_NAME} letters, digits, `-`, `_` or `.`)");
        Err(self.error(part, offset, &expected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printed(text: &str) -> String {
        parse(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .to_string()
    }

    fn error(text: &str) -> String {
        parse(text).expect_err(text).to_string()
    }

    #[test]
    fn every_term_parses_and_prints_canonically() {
        for (text, canonical) in [
            ("include=**/*.mp3", "include=**/*.mp3"),
            ("exclude=archive/*", "exclude=archive/*"),
            ("include=\"My Music/**\"", "include=\"My Music/**\""),
            ("include=\"a\\\"b\\\\*\"", "include=a\"b\\*"),
            ("largerthan=10MB", "largerthan=10MB"),
            ("largerthan=\"1.5 GB\"", "largerthan=1500MB"),
            ("smallerthan=1024", "smallerthan=1KiB"),
            ("smallerthan=0", "smallerthan=0"),
            ("copies=2", "copies=2"),
            ("copies=archive:1", "copies=archive:1"),
            ("copies=my-disk.2_b:0", "copies=my-disk.2_b:0"),
            ("lackingcopies=1", "lackingcopies=1"),
            ("inallgroup=backup", "inallgroup=backup"),
            ("present", "present"),
            ("anything", "anything"),
            ("nothing", "nothing"),
            ("standard", "standard"),
            ("copies=4294967295", "copies=4294967295"),
        ] {
            assert_eq!(printed(text), canonical, "{text}");
        }
    }

    #[test]
    fn the_readme_examples_are_canonical() {
        for text in [
            "standard",
            "include=**/*.jpg or include=**/*.png",
            "standard and smallerthan=1GiB",
            "exclude=video/** or present",
            "not copies=backup:1 or lackingcopies=1",
        ] {
            assert_eq!(printed(text), text);
        }
    }

    #[test]
    fn not_binds_tighter_than_and_and_and_than_or() {
        let same = |a: &str, b: &str| assert_eq!(parse(a).unwrap(), parse(b).unwrap(), "{a} / {b}");
        same(
            "present or anything and not nothing",
            "present or (anything and (not nothing))",
        );
        same("not present and anything", "(not present) and anything");
        same(
            "present and anything or nothing",
            "(present and anything) or nothing",
        );
        same("((present))", "present");
        assert_ne!(
            parse("present and anything or nothing").unwrap(),
            parse("present and (anything or nothing)").unwrap()
        );
        for (text, canonical) in [
            (
                "  present   or anything and  not nothing ",
                "present or anything and not nothing",
            ),
            (
                "(present or anything) and nothing",
                "(present or anything) and nothing",
            ),
            (
                "present and (anything and nothing)",
                "present and (anything and nothing)",
            ),
            (
                "present or (anything or nothing)",
                "present or (anything or nothing)",
            ),
            ("not (present or anything)", "not (present or anything)"),
            ("not not present", "not not present"),
            ("(include=*.mp3)or(present)", "include=*.mp3 or present"),
        ] {
            assert_eq!(printed(text), canonical, "{text}");
        }
    }

    #[test]
    fn each_bad_expression_names_what_was_expected_where_and_what_was_found() {
        for (text, message) in [
            ("largerthan 10MB", "expected `=` after `largerthan` at column 12, found `10MB`"),
            ("present and copies", "expected `=` after `copies` at column 19, found the end of the expression"),
            ("", "expected a term (include=, exclude=, largerthan=, smallerthan=, copies=, lackingcopies=, inallgroup=, present, anything, nothing, standard, `not` or `(`) at column 1, found the end of the expression"),
            ("present and", "at column 12, found the end of the expression"),
            ("present anything", "expected `and` or `or` between two terms at column 9, found `anything`"),
            ("present or or", "at column 12, found `or`"),
            ("present)", "expected the end of the expression at column 8, found `)` with no `(` to close"),
            ("(present", "expected `)` to close the `(` at column 1 at column 9, found the end of the expression"),
            ("(present anything)", "expected `and`, `or` or `)` at column 10, found `anything`"),
            ("()", "at column 2, found `)`"),
            ("presnt", "at column 1, found `presnt`"),
            ("size=10", "at column 1, found `size=10`"),
            ("present=1", "expected `present` alone (it takes no `=`) at column 1, found `present=1`"),
            ("largerthan=10XB", "expected a size (e.g. `10MB`, `1GiB`, `500k`) after `largerthan=` at column 12, found `10XB`"),
            ("largerthan= 10MB", "expected a size (e.g. `10MB`, `1GiB`, `500k`) after `largerthan=` at column 12, found a space"),
            ("smallerthan=", "after `smallerthan=` at column 13, found the end of the expression"),
            ("include=", "expected a path glob (e.g. `**/*.mp3`) after `include=` at column 9, found the end of the expression"),
            ("(include=)", "after `include=` at column 10, found `)`"),
            ("exclude=\"\"", "after `exclude=` at column 9, found `\"\"`"),
            ("include=[a", "expected a path glob (e.g. `**/*.mp3`) after `include=` at column 9, found `[a` (unclosed character class; missing ']')"),
            ("include=\"a b", "expected `\"` to close the `\"` at column 9 at column 13, found the end of the expression"),
            ("include=\"a\"b", "expected a space or `)` after the closing `\"` at column 12, found `b`"),
            ("copies=two", "expected a number of copies after `copies=` at column 8, found `two`"),
            ("copies=-1", "expected a number of copies after `copies=` at column 8, found `-1`"),
            ("copies=4294967296", "expected a number of copies up to 4294967295 after `copies=` at column 8, found `4294967296`"),
            ("copies=archive:", "expected a number of copies after `copies=archive:` at column 16, found the end of the expression"),
            ("copies=archive:x", "after `copies=archive:` at column 16, found `x`"),
            ("copies=:1", "expected a group name (1 to 64 letters, digits, `-`, `_` or `.`) after `copies=` at column 8, found `:`"),
            ("copies=a/b:1", "after `copies=` at column 8, found `a/b`"),
            ("lackingcopies=1.5", "after `lackingcopies=` at column 15, found `1.5`"),
            ("inallgroup=", "expected a group name (1 to 64 letters, digits, `-`, `_` or `.`) after `inallgroup=` at column 12, found the end of the expression"),
            ("inallgroup=a:b", "after `inallgroup=` at column 12, found `a:b`"),
            ("include=é or presnt", "at column 14, found `presnt`"),
            ("AND", "found `AND`"),
        ] {
            let got = error(text);
            assert!(got.ends_with(message), "{text}:\n  got  {got}\n  want {message}");
        }
    }

    #[test]
    fn a_hostile_expression_is_an_error_not_a_crash() {
        let deep = format!("{}present{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(error(&deep).starts_with("expected an expression of at most 4096 bytes"));
        let deep = format!("{}present{}", "(".repeat(1000), ")".repeat(1000));
        assert_eq!(
            error(&deep),
            "expected at most 32 nested `(` and `not` at column 33, found `(`"
        );
        let nots = format!("{}present", "not ".repeat(1000));
        assert!(error(&nots).starts_with("expected at most 32 nested"));
        let nested = format!("{}present{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert_eq!(printed(&nested), "present");
        let long = format!("copies={}", "9".repeat(4000));
        assert!(error(&long).ends_with("found `9999999999999999999999999999999999999999…`"));
        let wide = vec!["present"; 300].join(" or ");
        assert!(parse(&wide).is_ok());
        assert!(error(&"x".repeat(5000)).ends_with("found 5000 bytes"));
        assert!(error("presen\u{1b}t").ends_with("found `presen\\u{1b}t`"));
    }

    #[test]
    fn group_names_are_plain() {
        assert!(is_group_name("archive") && is_group_name("my-NAS_2.local"));
        for bad in [
            "",
            "a b",
            "a:b",
            "a/b",
            "é",
            &"g".repeat(MAX_GROUP_NAME + 1),
        ] {
            assert!(!is_group_name(bad), "{bad}");
        }
        assert!(is_group_name(&"g".repeat(MAX_GROUP_NAME)));
    }

    #[test]
    fn columns_count_characters_from_one() {
        let err = parse("présent").unwrap_err();
        assert_eq!(err.column(), 1);
        assert_eq!(parse("include=é or largerthan").unwrap_err().column(), 24);
    }
}
