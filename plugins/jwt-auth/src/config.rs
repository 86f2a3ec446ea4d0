//! The plugin's config: keys, accepted algorithms and claim rules, checked once at `init`.
//!
//! Every error starts with `jwt-auth: ` and names the key; see the crate docs for the keys.

use serde::Deserialize;
use sluice_plugin_sdk::prelude::from_config;
use sluice_plugin_sdk::serde_json::{self, Value};

use crate::claims::Rules;
use crate::jwks::{self, Jwk};
use crate::token::Alg;

/// The default `leeway`, in seconds.
pub const DEFAULT_LEEWAY_S: u64 = 30;
/// The largest `leeway` accepted, in seconds.
pub const MAX_LEEWAY_S: u64 = 600;

const LEEWAY_ERROR: &str = "jwt-auth: `leeway` must be a whole number of seconds, 0 to 600";
const MAX_AGE_ERROR: &str = "jwt-auth: `max_age` must be a positive whole number of seconds";

/// The parsed config.
#[derive(Debug, Clone)]
pub struct Config {
    /// `secret`: the HS256 key, as UTF-8 bytes.
    pub secret: Option<Vec<u8>>,
    /// `jwks`: its usable keys, in order; empty without `jwks`.
    pub jwks: Vec<Jwk>,
    /// `algorithms`: the accepted header `alg`s, never empty.
    pub algorithms: Vec<Alg>,
    /// What the claims must satisfy.
    pub rules: Rules,
}

/// The config as given; every value is checked by hand so that errors name their key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    secret: Option<Value>,
    jwks: Option<Value>,
    algorithms: Option<Value>,
    require_exp: Option<Value>,
    issuer: Option<Value>,
    audience: Option<Value>,
    leeway: Option<Value>,
    max_age: Option<Value>,
}

impl Config {
    /// Parses and checks the plugin's `config` table.
    pub fn from_json(config: Value) -> Result<Config, String> {
        let raw: Raw = from_config(config).map_err(|error| format!("jwt-auth: {error}"))?;
        let secret = match raw.secret {
            None => None,
            Some(Value::String(secret)) if secret.is_empty() => {
                return Err("jwt-auth: `secret` must not be empty".to_owned());
            }
            Some(Value::String(secret)) => Some(secret.into_bytes()),
            Some(_) => return Err("jwt-auth: `secret` must be a string".to_owned()),
        };
        let jwks = match raw.jwks {
            None => Vec::new(),
            Some(Value::String(text)) => {
                let value = serde_json::from_str(&text)
                    .map_err(|error| format!("jwt-auth: `jwks` is a string but not JSON: {error}"))?;
                jwks::parse(&value)?
            }
            Some(value) => jwks::parse(&value)?,
        };
        if secret.is_none() && jwks.is_empty() {
            return Err("jwt-auth: `secret` (an HS256 key) or `jwks` (RS256/ES256 public keys) is required"
                .to_owned());
        }
        let algorithms = match raw.algorithms {
            None => Alg::ALL
                .into_iter()
                .filter(|alg| if *alg == Alg::Hs256 { secret.is_some() } else { !jwks.is_empty() })
                .collect(),
            Some(value) => algorithms(&value, secret.is_some(), !jwks.is_empty())?,
        };
        let require_exp = match raw.require_exp {
            None => true,
            Some(Value::Bool(require)) => require,
            Some(_) => return Err("jwt-auth: `require_exp` must be true or false".to_owned()),
        };
        let issuer = match raw.issuer {
            None => None,
            Some(Value::String(issuer)) if !issuer.is_empty() => Some(issuer),
            Some(_) => return Err("jwt-auth: `issuer` must be a non-empty string".to_owned()),
        };
        let audience = match raw.audience {
            None => Vec::new(),
            Some(value) => audience(value)?,
        };
        let seconds = |value: Option<Value>, range: (u64, u64), error: &str| match value {
            None => Ok(None),
            Some(value) => match value.as_u64() {
                Some(n) if (range.0..=range.1).contains(&n) => Ok(Some(n)),
                _ => Err(error.to_owned()),
            },
        };
        let leeway_s = seconds(raw.leeway, (0, MAX_LEEWAY_S), LEEWAY_ERROR)?.unwrap_or(DEFAULT_LEEWAY_S);
        let max_age_s = seconds(raw.max_age, (1, u64::MAX / 1000), MAX_AGE_ERROR)?;
        let rules = Rules { require_exp, issuer, audience, leeway_s, max_age_s };
        Ok(Config { secret, jwks, algorithms, rules })
    }

    /// The accepted algorithms' names, comma-separated, for refusals.
    pub fn algorithm_names(&self) -> String {
        self.algorithms.iter().map(|alg| alg.name()).collect::<Vec<_>>().join(", ")
    }
}

/// `algorithms`: a non-empty list of supported names, each with its key configured.
fn algorithms(value: &Value, has_secret: bool, has_jwks: bool) -> Result<Vec<Alg>, String> {
    let names = value
        .as_array()
        .filter(|names| !names.is_empty())
        .ok_or("jwt-auth: `algorithms` must be a non-empty list of strings")?;
    let mut algorithms = Vec::new();
    for name in names {
        let name = name.as_str().ok_or("jwt-auth: `algorithms` must be a non-empty list of strings")?;
        let alg = match Alg::from_name(name) {
            Some(alg) => alg,
            None if name.eq_ignore_ascii_case("none") => {
                return Err("jwt-auth: `algorithms`: \"none\" (unsigned tokens) is never accepted".to_owned());
            }
            None => {
                return Err(format!(
                    "jwt-auth: `algorithms`: unknown algorithm {name:?} (supported: HS256, RS256, ES256)"
                ));
            }
        };
        match alg {
            Alg::Hs256 if !has_secret => {
                return Err("jwt-auth: `algorithms` has HS256 but `secret` is not set".to_owned());
            }
            Alg::Rs256 | Alg::Es256 if !has_jwks => {
                return Err(format!("jwt-auth: `algorithms` has {name} but `jwks` is not set"));
            }
            _ if !algorithms.contains(&alg) => algorithms.push(alg),
            _ => {}
        }
    }
    Ok(algorithms)
}

/// `audience`: a non-empty string, or a non-empty list of them.
fn audience(value: Value) -> Result<Vec<String>, String> {
    let audience: Option<Vec<String>> = match value {
        Value::String(aud) => Some(vec![aud]),
        Value::Array(auds) => auds.into_iter().map(|aud| aud.as_str().map(str::to_owned)).collect(),
        _ => None,
    };
    audience.filter(|auds| !auds.is_empty() && auds.iter().all(|aud| !aud.is_empty())).ok_or_else(|| {
        "jwt-auth: `audience` must be a non-empty string or list of non-empty strings".to_owned()
    })
}
