//! Reads `gateway.toml`: syntax, then each section on its own, then cross-references,
//! collecting every error with its line instead of stopping at the first.

use super::broker::{BrokerConfig, BrokerKind};
use super::model::{
    AdminConfig, ApiConfig, ChannelConfig, Config, Fallback, PluginConfig, RouteConfig, ServerConfig,
    StaticConfig,
};
use serde::de::DeserializeOwned;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

/// One problem in a config file, at a line, under a dotted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line of the offending key or value.
    pub line: usize,
    /// The dotted key, for example `plugins.jwt-auth.deadline` (empty for syntax errors).
    pub key: String,
    /// What is wrong, in lower case.
    pub message: String,
}

/// Every problem found in one config file, in file order.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors {
    /// The file the errors are in, as given.
    pub file: String,
    /// At least one error.
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            let sep = if i == 0 { "" } else { "\n" };
            match e.key.as_str() {
                "" => write!(f, "{sep}{}:{}: {}", self.file, e.line, e.message)?,
                key => write!(f, "{sep}{}:{}: {key}: {}", self.file, e.line, e.message)?,
            }
        }
        Ok(())
    }
}

/// Reads and validates a config file; plugin paths resolve against its folder.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        file: file.clone(),
        errors: vec![ConfigError { line: 0, key: String::new(), message: format!("cannot read: {e}") }],
    })?;
    let mut config = parse(&text).map_err(|errors| ConfigErrors { file, errors })?;
    let base = path.parent().unwrap_or(Path::new("."));
    for plugin in config.plugins.values_mut() {
        plugin.path = base.join(&plugin.path);
        for file in plugin.config_files.values_mut() {
            *file = base.join(&*file);
        }
    }
    if !config.server.plugin_cache.as_os_str().is_empty() {
        config.server.plugin_cache = base.join(&config.server.plugin_cache);
    }
    if let Some(tls) = &mut config.server.tls {
        tls.cert = base.join(&tls.cert);
        tls.key = base.join(&tls.key);
    }
    for mount in &mut config.statics {
        mount.dir = base.join(&mount.dir);
    }
    let broker = &mut config.broker;
    for path in [&mut broker.credentials, &mut broker.tls_ca, &mut broker.tls_cert, &mut broker.tls_key]
        .into_iter()
        .flatten()
    {
        *path = base.join(&*path);
    }
    Ok(config)
}

struct Collector<'s> {
    text: &'s str,
    errors: Vec<ConfigError>,
    fallbacks: Vec<Fallback>,
    /// Every dotted key in the file with the spans of its key and its value.
    keys: Vec<(String, Range<usize>, Range<usize>)>,
}

impl Collector<'_> {
    /// The line of `key`, or of `span` for a key not written in the file.
    fn line(&self, span: &Range<usize>, key: &str) -> usize {
        let at = self.keys.iter().find(|(k, ..)| k == key).map_or(span.start, |(_, k, _)| k.start);
        self.text[..at.min(self.text.len())].matches('\n').count() + 1
    }

    /// Records an error; a key written in the file is reported at its own line.
    fn push(&mut self, span: Range<usize>, key: &str, message: impl Into<String>) {
        let line = self.line(&span, key);
        self.errors.push(ConfigError { line, key: key.into(), message: message.into() });
    }

    /// Deserializes one value, turning a failure into an error at the failing span,
    /// named by the innermost key that holds it.
    fn typed<T: DeserializeOwned>(&mut self, key: &str, value: Spanned<DeValue>) -> Option<T> {
        let whole = value.span();
        T::deserialize(ValueDeserializer::from(value))
            .map_err(|e| {
                let span = e.span().unwrap_or(whole);
                let inside = |r: &Range<usize>| r.start <= span.start && span.start < r.end.max(r.start + 1);
                let named = self
                    .keys
                    .iter()
                    .filter(|(k, key_span, value_span)| {
                        k.starts_with(key) && (inside(key_span) || inside(value_span))
                    })
                    .max_by_key(|(k, ..)| k.len())
                    .map_or_else(|| key.to_owned(), |(k, ..)| k.clone());
                self.push(span, &named, e.message().trim().replace('\n', " "))
            })
            .ok()
    }
}

/// Lists every key under `prefix` with its spans, descending into tables and arrays.
fn index(prefix: &str, table: &DeTable, out: &mut Vec<(String, Range<usize>, Range<usize>)>) {
    for (key, value) in table {
        let name = key.get_ref();
        let dotted = if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") };
        out.push((dotted.clone(), key.span(), value.span()));
        match value.get_ref() {
            DeValue::Table(inner) => index(&dotted, inner, out),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let DeValue::Table(inner) = item.get_ref() {
                        index(&format!("{dotted}[{i}]"), inner, out);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Parses config text; on failure returns every error found, sorted by line.
pub fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
    let mut c = Collector { text, errors: Vec::new(), fallbacks: Vec::new(), keys: Vec::new() };
    let (doc, syntax) = DeTable::parse_recoverable(text);
    for e in syntax {
        c.push(e.span().unwrap_or(0..0), "", e.message().trim().replace('\n', " "));
    }
    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    index("", doc.get_ref(), &mut c.keys);
    let mut config = Config::default();
    let mut spans = Spans::default();
    for (key, mut value) in doc.into_inner() {
        substitute_env(&mut c, key.get_ref(), &mut value);
        let key_span = key.span();
        match key.get_ref().as_ref() {
            "server" => {
                spans.server = value.span();
                config.server = c.typed::<ServerConfig>("server", value).unwrap_or_default();
            }
            "api" => {
                spans.api = value.span();
                config.api = c.typed::<ApiConfig>("api", value);
            }
            "admin" => {
                spans.admin = value.span();
                config.admin = c.typed::<AdminConfig>("admin", value);
            }
            "broker" => {
                spans.broker = value.span();
                let given: Vec<(String, Range<usize>)> = match value.get_ref() {
                    DeValue::Table(t) => t.iter().map(|(k, _)| (k.get_ref().to_string(), k.span())).collect(),
                    _ => Vec::new(),
                };
                config.broker = c.typed::<BrokerConfig>("broker", value).unwrap_or_default();
                // NATS settings under the memory broker are a typo or a forgotten `kind`.
                if config.broker.kind == BrokerKind::Memory {
                    for (key, span) in given.into_iter().filter(|(k, _)| k != "kind") {
                        c.push(
                            span,
                            &format!("broker.{key}"),
                            "is for kind = \"nats\" only; the broker is \"memory\"",
                        );
                    }
                }
            }
            "plugins" => section_table(&mut c, value, |c, name, span, v| {
                let plugin = c.typed::<PluginConfig>(&format!("plugins.{name}"), v)?;
                spans.plugins.push((name.to_owned(), span));
                config.plugins.insert(name.to_owned(), plugin);
                Some(())
            }),
            "routes" => section_array(&mut c, "routes", value, |c, key, span, v| {
                config.routes.push(c.typed::<RouteConfig>(key, v)?);
                spans.routes.push(span);
                Some(())
            }),
            "channels" => section_array(&mut c, "channels", value, |c, key, span, v| {
                config.channels.push(c.typed::<ChannelConfig>(key, v)?);
                spans.channels.push(span);
                Some(())
            }),
            "static" => section_array(&mut c, "static", value, |c, key, span, v| {
                config.statics.push(c.typed::<StaticConfig>(key, v)?);
                spans.statics.push(span);
                Some(())
            }),
            other => c.push(
                key_span,
                other,
                "unknown section (expected server, api, admin, broker, plugins, routes, channels or static)",
            ),
        }
    }
    config.fallbacks = std::mem::take(&mut c.fallbacks);
    super::validate::check(&config, &spans, &mut |span, key, message| c.push(span, key, message));
    if c.errors.is_empty() {
        Ok(config)
    } else {
        c.errors.sort_by_key(|e| e.line);
        Err(c.errors)
    }
}

/// Where each named or listed entry stood, for errors found after deserializing.
#[derive(Default)]
pub(super) struct Spans {
    pub server: Range<usize>,
    pub api: Range<usize>,
    pub admin: Range<usize>,
    pub broker: Range<usize>,
    pub plugins: Vec<(String, Range<usize>)>,
    pub routes: Vec<Range<usize>>,
    pub channels: Vec<Range<usize>>,
    pub statics: Vec<Range<usize>>,
}

fn section_table(
    c: &mut Collector,
    value: Spanned<DeValue>,
    mut each: impl FnMut(&mut Collector, &str, Range<usize>, Spanned<DeValue>) -> Option<()>,
) {
    let span = value.span();
    match value.into_inner() {
        DeValue::Table(table) => {
            for (name, entry) in table {
                let _ = each(c, name.get_ref(), name.span(), entry);
            }
        }
        _ => c.push(span, "plugins", "expected a table of plugins, `[plugins.NAME]`"),
    }
}

fn section_array(
    c: &mut Collector,
    section: &str,
    value: Spanned<DeValue>,
    mut each: impl FnMut(&mut Collector, &str, Range<usize>, Spanned<DeValue>) -> Option<()>,
) {
    let span = value.span();
    match value.into_inner() {
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let _ = each(c, &format!("{section}[{i}]"), item.span(), item.clone());
            }
        }
        _ => c.push(span, section, format!("expected an array of tables, `[[{section}]]`")),
    }
}

/// Replaces `${NAME}` in every string with the environment variable `NAME`, or with
/// `default` for `${NAME:-default}` when it is unset or empty, so that secrets need
/// not be written in the file.
fn substitute_env(c: &mut Collector, key: &str, value: &mut Spanned<DeValue>) {
    let span = value.span();
    match value.get_mut() {
        DeValue::String(s) if s.contains("${") => match expand(s) {
            Ok((expanded, defaulted)) => {
                *s = expanded.into();
                for variable in defaulted {
                    let line = c.line(&span, key);
                    c.fallbacks.push(Fallback { key: key.to_owned(), line, variable });
                }
            }
            Err(name) => c.push(span, key, format!("environment variable `{name}` is not set")),
        },
        DeValue::Array(items) => items.iter_mut().for_each(|v| substitute_env(c, key, v)),
        DeValue::Table(table) => {
            for (k, v) in table.iter_mut() {
                substitute_env(c, &format!("{key}.{}", k.get_ref()), v);
            }
        }
        _ => {}
    }
}

/// The expanded text and the variables whose defaults were used, or the variable that is
/// unset and has no default.
fn expand(text: &str) -> Result<(String, Vec<String>), String> {
    let mut out = String::with_capacity(text.len());
    let mut defaulted = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        let inner = &rest[start + 2..start + len];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        out.push_str(&rest[..start]);
        match (std::env::var(name), default) {
            (Ok(value), _) if !value.is_empty() => out.push_str(&value),
            (_, Some(default)) => {
                out.push_str(default);
                defaulted.push(name.to_owned());
            }
            _ => return Err(name.to_owned()),
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok((out, defaulted))
}
