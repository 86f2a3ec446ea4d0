//! Secrets and demo values: a key or plugin setting that fell back to the default of a
//! `${NAME:-default}` is a demo value anyone can read in the repository. It is refused
//! unless every listener is on loopback, where it is only a warning.

use super::load::ConfigError;
use super::model::{Config, Fallback};

/// Whether `key` holds a secret: API keys, admin keys, and plugin settings (where the
/// example plugins keep theirs, such as jwt-auth's `secret`).
fn is_secret(key: &str) -> bool {
    key == "api.keys"
        || key == "admin.keys"
        || key == "broker.token"
        || key.strip_prefix("plugins.").is_some_and(|rest| rest.split('.').nth(1) == Some("config"))
}

fn loopback(listen: &str) -> bool {
    listen.parse::<std::net::SocketAddr>().is_ok_and(|a| a.ip().is_loopback())
}

impl Config {
    /// Checks the secrets that fell back to their demo defaults, as the config stands now
    /// (after `--listen`): an error for each when a listener is off loopback, otherwise a
    /// warning for each (to be logged).
    pub fn check_secrets(&self) -> Result<Vec<ConfigError>, Vec<ConfigError>> {
        let mut demo: Vec<&Fallback> = self.fallbacks.iter().filter(|f| is_secret(&f.key)).collect();
        demo.sort_by_key(|f| f.line);
        let public =
            !loopback(&self.server.listen) || self.admin.as_ref().is_some_and(|a| !loopback(&a.listen));
        let found: Vec<ConfigError> = demo
            .into_iter()
            .map(|f| ConfigError {
                line: f.line,
                key: f.key.clone(),
                message: if public {
                    format!(
                        "`{}` is not set and the demo default is refused off loopback: set it, or listen on \
                         127.0.0.1 only",
                        f.variable
                    )
                } else {
                    format!(
                        "`{}` is not set: using the demo default, acceptable on loopback only",
                        f.variable
                    )
                },
            })
            .collect();
        if public && !found.is_empty() { Err(found) } else { Ok(found) }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse;

    const DEMO: &str = r#"
[server]
listen = "LISTEN"
[api]
keys = ["${SLUICE_TEST_UNSET_KEY:-demo-key}"]
[plugins.p]
path = "p.wasm"
config = { secret = "${SLUICE_TEST_UNSET_SECRET:-demo-secret}", words = ["${SLUICE_TEST_UNSET_WORD:-x}"] }
[[routes]]
path = "/ws"
plugins = ["p"]
"#;

    #[test]
    fn demo_secrets_are_refused_off_loopback_and_warned_on_it() {
        let public = parse(&DEMO.replace("LISTEN", "0.0.0.0:8080")).unwrap();
        let errors = public.check_secrets().unwrap_err();
        let keys: Vec<(&str, usize)> = errors.iter().map(|e| (e.key.as_str(), e.line)).collect();
        assert_eq!(keys, [("api.keys", 5), ("plugins.p.config.secret", 8), ("plugins.p.config.words", 8)]);
        assert!(errors[0].message.contains("SLUICE_TEST_UNSET_KEY"), "{errors:?}");
        let local = parse(&DEMO.replace("LISTEN", "127.0.0.1:8080")).unwrap();
        assert_eq!(local.check_secrets().unwrap().len(), 3);
    }

    #[test]
    fn a_public_admin_listener_counts_too() {
        let text =
            DEMO.replace("LISTEN", "127.0.0.1:8080") + "[admin]\nlisten = \"0.0.0.0:9090\"\nkeys = [\"k\"]\n";
        assert!(parse(&text).unwrap().check_secrets().is_err());
    }
}
