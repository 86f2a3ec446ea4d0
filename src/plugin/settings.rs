//! The config text a plugin's `init` gets: its `config` table as JSON, with the files of
//! `config_files` read in under their keys, and a digest of those files so that a reload
//! can tell a changed key file from an unchanged one.

use super::cache::content_hash;
use crate::config::PluginConfig;
use serde_json::Value;

/// The JSON text for `init` and the sha256 over every config file (name and bytes).
#[derive(Debug)]
pub struct Settings {
    /// `init`'s argument.
    pub text: String,
    /// Unchanged files give an unchanged digest.
    pub files: [u8; 32],
}

/// Builds `init`'s config for `plugin`, reading its `config_files`; an error names the
/// file and why it could not be used.
pub fn settings(plugin: &PluginConfig) -> Result<Settings, String> {
    let mut config = match &plugin.config {
        Some(value) => serde_json::to_value(value).map_err(|e| format!("config: {e}"))?,
        None => Value::Object(serde_json::Map::new()),
    };
    let mut digest = Vec::new();
    for (key, path) in &plugin.config_files {
        let bytes =
            std::fs::read(path).map_err(|e| format!("config_files.{key} ({}): {e}", path.display()))?;
        digest.extend_from_slice(&content_hash(key.as_bytes()));
        digest.extend_from_slice(&content_hash(&bytes));
        let text = String::from_utf8(bytes)
            .map_err(|_| format!("config_files.{key} ({}): not UTF-8 text", path.display()))?;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        // `validate` made `config` a table whenever there are files.
        if let Value::Object(table) = &mut config {
            table.insert(key.clone(), value);
        }
    }
    let text = serde_json::to_string(&config).map_err(|e| format!("config: {e}"))?;
    Ok(Settings { text, files: content_hash(&digest) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(config: &str, files: &[(&str, &std::path::Path)]) -> PluginConfig {
        let mut plugin: PluginConfig = toml::from_str(&format!("path = \"p.wasm\"\n{config}")).unwrap();
        plugin.config_files = files.iter().map(|(k, p)| ((*k).to_owned(), p.to_path_buf())).collect();
        plugin
    }

    #[test]
    fn files_join_the_config_as_json_or_text_and_change_the_digest() {
        let dir = std::env::temp_dir().join(format!("sluice-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (json, text) = (dir.join("keys.json"), dir.join("motd.txt"));
        std::fs::write(&json, r#"{"keys":[1]}"#).unwrap();
        std::fs::write(&text, "hello").unwrap();
        let config = plugin("config = { a = 1 }", &[("jwks", &json), ("motd", &text)]);
        let first = settings(&config).unwrap();
        let parsed: Value = serde_json::from_str(&first.text).unwrap();
        assert_eq!(parsed, serde_json::json!({"a": 1, "jwks": {"keys": [1]}, "motd": "hello"}));
        assert_eq!(settings(&config).unwrap().files, first.files, "same files, same digest");
        std::fs::write(&json, r#"{"keys":[2]}"#).unwrap();
        assert_ne!(settings(&config).unwrap().files, first.files);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_file_is_named() {
        let config = plugin("", &[("jwks", std::path::Path::new("/nonexistent/jwks.json"))]);
        let error = settings(&config).unwrap_err();
        assert!(error.starts_with("config_files.jwks (/nonexistent/jwks.json): "), "{error}");
    }
}
