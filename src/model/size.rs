//! Byte sizes as people write them (`10MB`, `1GiB`, `500k`, `1.5 MB`), for
//! the settings and rules that take one: `bandwidth_limit` in config.toml
//! and `largerthan=`/`smallerthan=` in preferred content. One parser, so a
//! size means the same everywhere.

/// The units a size may carry, largest first: decimal (`k`, `M`, `G`, `T`,
/// with or without `B`) and binary (`KiB`, `MiB`, `GiB`, `TiB`). Matched
/// without regard to case, so `10mb` is `10MB` (ten million bytes).
const UNITS: &[(&str, u64)] = &[
    ("TiB", 1 << 40),
    ("TB", 1_000_000_000_000),
    ("GiB", 1 << 30),
    ("GB", 1_000_000_000),
    ("MiB", 1 << 20),
    ("MB", 1_000_000),
    ("KiB", 1 << 10),
    ("kB", 1_000),
];

/// The bytes of `text`: a number (whole, or with a decimal point) and an
/// optional unit, spaces allowed around and between them (`"10 MB"`). A
/// fraction of a byte is dropped (`"1.5"` is 1). `None` when it is not a
/// size or does not fit in a `u64`.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let unit = unit.trim();
    let scale = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" => 1_000,
        "m" => 1_000_000,
        "g" => 1_000_000_000,
        "t" => 1_000_000_000_000,
        lower => {
            UNITS
                .iter()
                .find(|(name, _)| name.to_ascii_lowercase() == lower)?
                .1
        }
    };
    if !number.contains('.') {
        // Whole numbers exactly: a float would round sizes above 2^53.
        return number.parse::<u64>().ok()?.checked_mul(scale);
    }
    let whole = number.trim_end_matches('.');
    if whole.is_empty() || number.matches('.').count() > 1 {
        return None;
    }
    let bytes = number.parse::<f64>().ok()? * scale as f64;
    (bytes.is_finite() && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// `bytes` in the largest unit that shows it exactly (`10MB`, `1GiB`,
/// `1500`), so a printed size reads as a person would write it and parses
/// back to the same number.
pub fn format_size(bytes: u64) -> String {
    UNITS
        .iter()
        .find(|(_, scale)| bytes != 0 && bytes % scale == 0)
        .map_or_else(
            || bytes.to_string(),
            |(name, scale)| format!("{}{name}", bytes / scale),
        )
}

#[cfg(test)]
mod tests {
    use super::{format_size, parse_size};
    use proptest::prelude::*;

    #[test]
    fn reads_decimal_and_binary_units() {
        for (text, bytes) in [
            ("0", Some(0)),
            ("1000", Some(1000)),
            ("500k", Some(500_000)),
            ("10MB", Some(10_000_000)),
            ("10mb", Some(10_000_000)),
            ("1.5 MB", Some(1_500_000)),
            ("2GiB", Some(2 << 30)),
            ("1 KiB", Some(1024)),
            ("3T", Some(3_000_000_000_000)),
            ("18446744073709551615", Some(u64::MAX)),
            ("9007199254740993", Some(9_007_199_254_740_993)),
            ("1.5", Some(1)),
            ("18446744073709551616", None),
            ("20000000TiB", None),
            ("1e3", None),
            ("1..5k", None),
            (".k", None),
            ("12 parsecs", None),
            ("MB", None),
            ("", None),
        ] {
            assert_eq!(parse_size(text), bytes, "{text}");
        }
    }

    #[test]
    fn prints_in_the_largest_exact_unit() {
        for (bytes, text) in [
            (0, "0"),
            (1500, "1500"),
            (10_000_000, "10MB"),
            (1 << 30, "1GiB"),
            (3 << 10, "3KiB"),
            (5_000, "5kB"),
        ] {
            assert_eq!(format_size(bytes), text);
        }
    }

    proptest! {
        #[test]
        fn printed_sizes_parse_back(bytes in any::<u64>()) {
            prop_assert_eq!(parse_size(&format_size(bytes)), Some(bytes));
        }
    }
}
