//! Sizes (`"64KiB"`) and durations (`"30s"`) as operators write them in `gateway.toml`.

use serde::{Deserialize, Deserializer, de};
use std::fmt;

/// A byte count written as `"512B"`, `"64KiB"`, `"1MiB"`, `"2GiB"` or a bare integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// The size in bytes as a `usize`, saturating on 32-bit targets.
    pub fn bytes(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

/// A span of time written as `"250ms"`, `"30s"`, `"5m"` or `"1h"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// Whole seconds, convenient for defaults.
    pub const fn secs(secs: u64) -> Self {
        Self(std::time::Duration::from_secs(secs))
    }

    /// Milliseconds, convenient for defaults.
    pub const fn millis(millis: u64) -> Self {
        Self(std::time::Duration::from_millis(millis))
    }
}

fn split_number(text: &str) -> Option<(u64, &str)> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let number = text[..digits].parse().ok()?;
    Some((number, text[digits..].trim()))
}

/// Parses `"64KiB"` and friends; `None` names nothing, the caller says what was wrong.
pub fn parse_size(text: &str) -> Option<u64> {
    let (number, unit) = split_number(text)?;
    let scale: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    number.checked_mul(scale)
}

/// Parses `"30s"` and friends.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let (number, unit) = split_number(text)?;
    let millis = match unit {
        "ms" => number,
        "s" => number.checked_mul(1_000)?,
        "m" => number.checked_mul(60_000)?,
        "h" => number.checked_mul(3_600_000)?,
        _ => return None,
    };
    Some(std::time::Duration::from_millis(millis))
}

struct Visitor<T>(fn(&str) -> Option<T>, &'static str);

impl<T> de::Visitor<'_> for Visitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.1)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        (self.0)(text).ok_or_else(|| E::custom(format!("`{text}` is not {}", self.1)))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<T, E> {
        self.visit_str(&n.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Visitor(parse_size, "a size such as \"64KiB\", \"1MiB\" or a number of bytes");
        d.deserialize_any(v).map(ByteSize)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Visitor(parse_duration, "a duration such as \"250ms\", \"30s\", \"5m\" or \"1h\"");
        d.deserialize_str(v).map(Duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_size("64KiB"), Some(65_536));
        assert_eq!(parse_size("1MiB"), Some(1 << 20));
        assert_eq!(parse_size("10"), Some(10));
        assert_eq!(parse_size("3 parsecs"), None);
        assert_eq!(parse_duration("250ms"), Some(std::time::Duration::from_millis(250)));
        assert_eq!(parse_duration("5m"), Some(std::time::Duration::from_secs(300)));
        assert_eq!(parse_duration("5"), None);
    }
}
