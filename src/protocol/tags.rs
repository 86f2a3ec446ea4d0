//! Publication tags and subscription filters. A publication may carry `tags`, a flat map
//! of strings; a subscription may carry a `filter` over them, which the host evaluates
//! once per distinct filter per message, without allocating:
//!
//! - `{"eq": ["region", "eu"]}`: the tag is present and equal;
//! - `{"in": ["region", ["eu", "us"]]}`: the tag is present and one of the values;
//! - `{"and": [F, ...]}`, `{"or": [F, ...]}`, `{"not": F}`.
//!
//! A message without the tag fails `eq` and `in` (and so passes their `not`).

use serde_json::Value;
use serde_json::value::RawValue;

/// Tags on one publication at most.
pub const MAX_TAGS: usize = 32;
/// Longest tag key, in bytes.
pub const MAX_KEY: usize = 64;
/// Longest tag value, in bytes.
pub const MAX_VALUE: usize = 256;
/// Deepest nesting of a filter (`{"not": {"not": ...}}` counts two).
pub const MAX_DEPTH: usize = 8;
/// Most conditions and operators in one filter.
pub const MAX_NODES: usize = 64;

/// A publication's tags, sorted by key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tags(Vec<(String, String)>);

impl Tags {
    /// Reads `{"key": "value", ...}`: strings only, within [`MAX_TAGS`], [`MAX_KEY`] and
    /// [`MAX_VALUE`].
    pub fn parse(raw: &RawValue) -> Result<Self, String> {
        let map: serde_json::Map<String, Value> =
            serde_json::from_str(raw.get()).map_err(|_| "`tags` must be an object of strings".to_owned())?;
        if map.len() > MAX_TAGS {
            return Err(format!("at most {MAX_TAGS} tags"));
        }
        let mut tags = Vec::with_capacity(map.len());
        for (key, value) in map {
            let Value::String(value) = value else {
                return Err(format!("tag `{key}` must be a string"));
            };
            if key.is_empty() || key.len() > MAX_KEY {
                return Err(format!("a tag key has 1 to {MAX_KEY} bytes"));
            }
            if value.len() > MAX_VALUE {
                return Err(format!("tag `{key}` is over {MAX_VALUE} bytes"));
            }
            tags.push((key, value));
        }
        // Keys are unique; sorted here whatever order serde_json's map keeps.
        tags.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(Self(tags))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        let i = self.0.binary_search_by(|(k, _)| k.as_str().cmp(key)).ok()?;
        Some(&self.0[i].1)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The tags as a JSON object.
    pub fn to_json(&self) -> String {
        let map: serde_json::Map<String, Value> =
            self.0.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        Value::Object(map).to_string()
    }

    /// Key and value pairs, by key, as plugins get them.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        self.0.clone()
    }

    /// Key and value pairs, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// A subscription's condition over tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// The tag equals the value.
    Eq(String, String),
    /// The tag is one of the values.
    In(String, Vec<String>),
    /// Every condition holds.
    And(Vec<Filter>),
    /// At least one condition holds.
    Or(Vec<Filter>),
    /// The condition does not hold.
    Not(Box<Filter>),
}

impl Filter {
    /// Reads a filter within [`MAX_DEPTH`] and [`MAX_NODES`].
    pub fn parse(raw: &RawValue) -> Result<Self, String> {
        let value: Value = serde_json::from_str(raw.get()).map_err(|e| format!("bad `filter`: {e}"))?;
        let mut nodes = 0;
        Self::from_value(&value, 1, &mut nodes)
    }

    fn from_value(value: &Value, depth: usize, nodes: &mut usize) -> Result<Self, String> {
        *nodes += 1;
        if depth > MAX_DEPTH {
            return Err(format!("a filter nests at most {MAX_DEPTH} deep"));
        }
        if *nodes > MAX_NODES {
            return Err(format!("a filter has at most {MAX_NODES} conditions"));
        }
        let expected = || {
            "a filter is one of {\"eq\": [K, V]}, {\"in\": [K, [V, ...]]}, {\"and\": [F, ...]}, {\"or\": [F, ...]}, {\"not\": F}".to_owned()
        };
        let Some((op, arg)) = value.as_object().filter(|o| o.len() == 1).and_then(|o| o.iter().next()) else {
            return Err(expected());
        };
        let text = |v: &Value| v.as_str().map(str::to_owned).ok_or_else(|| format!("`{op}` takes strings"));
        fn list<'v>(op: &str, v: &'v Value) -> Result<&'v Vec<Value>, String> {
            v.as_array().ok_or_else(|| format!("`{op}` takes an array"))
        }
        match op.as_str() {
            "eq" => match list(op, arg)?.as_slice() {
                [key, value] => Ok(Self::Eq(text(key)?, text(value)?)),
                _ => Err("`eq` takes [key, value]".into()),
            },
            "in" => match list(op, arg)?.as_slice() {
                [key, Value::Array(values)] => {
                    *nodes += values.len();
                    if *nodes > MAX_NODES {
                        return Err(format!("a filter has at most {MAX_NODES} conditions"));
                    }
                    Ok(Self::In(text(key)?, values.iter().map(text).collect::<Result<_, _>>()?))
                }
                _ => Err("`in` takes [key, [value, ...]]".into()),
            },
            "and" | "or" => {
                let items = list(op, arg)?;
                if items.is_empty() {
                    return Err(format!("`{op}` needs at least one filter"));
                }
                let items =
                    items.iter().map(|f| Self::from_value(f, depth + 1, nodes)).collect::<Result<_, _>>()?;
                Ok(if op == "and" { Self::And(items) } else { Self::Or(items) })
            }
            "not" => Ok(Self::Not(Box::new(Self::from_value(arg, depth + 1, nodes)?))),
            _ => Err(expected()),
        }
    }

    /// Whether a message with `tags` passes.
    pub fn admits(&self, tags: &Tags) -> bool {
        match self {
            Self::Eq(key, value) => tags.get(key) == Some(value),
            Self::In(key, values) => tags.get(key).is_some_and(|v| values.iter().any(|x| x == v)),
            Self::And(items) => items.iter().all(|f| f.admits(tags)),
            Self::Or(items) => items.iter().any(|f| f.admits(tags)),
            Self::Not(inner) => !inner.admits(tags),
        }
    }

    /// One text per meaning (the JSON form, whitespace dropped), so that equal filters
    /// share one evaluation per message.
    pub fn canonical(&self) -> String {
        match self {
            Self::Eq(k, v) => serde_json::json!({ "eq": [k, v] }).to_string(),
            Self::In(k, vs) => serde_json::json!({ "in": [k, vs] }).to_string(),
            Self::And(items) | Self::Or(items) => {
                let op = if matches!(self, Self::And(_)) { "and" } else { "or" };
                let inner: Vec<String> = items.iter().map(Self::canonical).collect();
                format!("{{\"{op}\":[{}]}}", inner.join(","))
            }
            Self::Not(inner) => format!("{{\"not\":{}}}", inner.canonical()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.into()).unwrap()
    }

    #[test]
    fn filters_combine_and_missing_tags_fail_conditions() {
        let tags = Tags::parse(&raw(r#"{"region":"eu","kind":"trade"}"#)).unwrap();
        let admits = |f: &str| Filter::parse(&raw(f)).unwrap().admits(&tags);
        assert!(admits(r#"{"eq":["region","eu"]}"#));
        assert!(!admits(r#"{"eq":["region","us"]}"#));
        assert!(admits(r#"{"in":["region",["us","eu"]]}"#));
        assert!(!admits(r#"{"eq":["desk","fx"]}"#));
        assert!(admits(r#"{"not":{"eq":["desk","fx"]}}"#));
        assert!(admits(r#"{"and":[{"eq":["region","eu"]},{"eq":["kind","trade"]}]}"#));
        assert!(!admits(r#"{"and":[{"eq":["region","eu"]},{"eq":["kind","quote"]}]}"#));
        assert!(admits(r#"{"or":[{"eq":["region","us"]},{"eq":["kind","trade"]}]}"#));
        assert!(!Filter::parse(&raw(r#"{"eq":["a","b"]}"#)).unwrap().admits(&Tags::default()));
    }

    #[test]
    fn bad_tags_and_filters_are_refused_with_a_reason() {
        for bad in [r#"[1]"#, r#"{"a":1}"#, r#"{"":"x"}"#] {
            assert!(Tags::parse(&raw(bad)).is_err(), "{bad}");
        }
        let many =
            format!("{{{}}}", (0..33).map(|i| format!("\"k{i}\":\"v\"")).collect::<Vec<_>>().join(","));
        assert!(Tags::parse(&raw(&many)).unwrap_err().contains("at most 32"));
        for bad in [r#"{}"#, r#"{"eq":["a"]}"#, r#"{"eq":["a",1]}"#, r#"{"and":[]}"#, r#"{"xor":[]}"#] {
            assert!(Filter::parse(&raw(bad)).is_err(), "{bad}");
        }
        let deep = format!("{}{}{}", r#"{"not":"#.repeat(9), r#"{"eq":["a","b"]}"#, "}".repeat(9));
        assert!(Filter::parse(&raw(&deep)).unwrap_err().contains("deep"));
        let wide = format!(
            r#"{{"in":["a",[{}]]}}"#,
            (0..70).map(|i| format!("\"{i}\"")).collect::<Vec<_>>().join(",")
        );
        assert!(Filter::parse(&raw(&wide)).unwrap_err().contains("conditions"));
    }

    #[test]
    fn equal_filters_share_one_canonical_text() {
        let a = Filter::parse(&raw(r#"{ "and": [ {"eq": ["a", "b"]}, {"not": {"in": ["c", ["d"]]}} ] }"#))
            .unwrap();
        let b = Filter::parse(&raw(r#"{"and":[{"eq":["a","b"]},{"not":{"in":["c",["d"]]}}]}"#)).unwrap();
        assert_eq!(a.canonical(), b.canonical());
        assert_eq!(Tags::parse(&raw(r#"{"b":"2","a":"1"}"#)).unwrap().to_json(), r#"{"a":"1","b":"2"}"#);
    }
}
