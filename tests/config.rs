//! `gateway.toml` handling: fixtures with the exact error text expected
//! (`tests/fixtures/config/NAME.toml` beside `NAME.err`), and every config in the
//! repository loaded for real. `BLESS=1 cargo test --test config` rewrites the `.err`
//! files after a deliberate change of wording.

mod common;

use std::path::Path;

#[test]
fn invalid_configs_report_every_error_with_its_key_and_line() {
    let dir = common::root().join("tests/fixtures/config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let errors =
            sluice::config::parse(&text).expect_err(&format!("{} should be invalid", path.display()));
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let actual = sluice::config::ConfigErrors { file, errors }.to_string() + "\n";
        let expected_path = path.with_extension("err");
        if std::env::var_os("BLESS").is_some() {
            std::fs::write(&expected_path, &actual).unwrap();
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        assert_eq!(actual, expected, "errors for {} differ from {}", path.display(), expected_path.display());
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} fixtures found");
}

fn load(path: &Path) -> sluice::Config {
    sluice::config::load(path).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn the_repository_gateway_toml_loads_with_its_plugins() {
    common::plugins();
    let config = load(&common::root().join("gateway.toml"));
    assert_eq!(config.server.listen, "127.0.0.1:8080");
    assert_eq!(config.routes[0].plugins, ["jwt-auth", "content-filter", "enrich"]);
    let gateway = sluice::Gateway::build(config).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(gateway.routes.contains_key("/ws"));
}

#[tokio::test]
async fn every_example_config_loads_with_its_plugins() {
    common::plugins();
    let mut loaded = 0;
    for entry in std::fs::read_dir(common::root().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let config = load(&path);
            sluice::Gateway::build(config).await.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            loaded += 1;
        }
    }
    assert!(loaded >= 2);
}

#[tokio::test]
async fn a_plugin_that_fails_to_load_is_named_with_its_file_and_reason() {
    let text = format!(
        "[plugins.ghost]\npath = \"{}/nope.wasm\"\n[plugins.filter]\npath = \"{}\"\nconfig = {{ max_size = 3 }}\n[[routes]]\npath = \"/ws\"\nplugins = [\"ghost\", \"filter\"]\n",
        common::root().display(),
        common::wasm("content_filter").display()
    );
    let config = sluice::config::parse(&text).unwrap();
    let error = sluice::Gateway::build(config).await.err().expect("loading fails").to_string();
    assert!(
        error.contains("plugin `ghost`") && error.contains("nope.wasm") && error.contains("cannot read"),
        "{error}"
    );
    assert!(
        error.contains("plugin `filter`") && error.contains("words"),
        "init's refusal is reported: {error}"
    );
}

#[test]
fn plugin_paths_resolve_against_the_config_folder() {
    let config = load(&common::root().join("examples/chat.toml"));
    let path = &config.plugins["enrich"].path;
    assert!(path.starts_with(common::root().join("examples")), "{}", path.display());
}

#[tokio::test]
async fn table_and_instance_limits_apply_per_plugin() {
    let wasm = common::wasm("content_filter").display().to_string();
    let plugin = |limit: &str| {
        format!(
            "[plugins.filter]\npath = \"{wasm}\"\n{limit}\nconfig = {{ words = [\"x\"] }}\n[[routes]]\npath = \"/ws\"\nplugins = [\"filter\"]\n"
        )
    };
    for limit in ["max_table_elements = 1", "max_core_instances = 1"] {
        let config = sluice::config::parse(&plugin(limit)).unwrap();
        let error = sluice::Gateway::build(config).await.err().unwrap_or_else(|| panic!("{limit} loads"));
        assert!(error.to_string().contains("plugin `filter`"), "{limit}: {error}");
    }
    let config = sluice::config::parse(&plugin("max_table_elements = 100000")).unwrap();
    assert!(sluice::Gateway::build(config).await.is_ok(), "generous limits load");
}

#[test]
fn the_public_chat_example_refuses_its_placeholder_secrets() {
    // examples/chat.toml listens on 0.0.0.0 with `${CHAT_API_KEY:-change-me}`: unless the
    // variables are set, it must not start with the placeholders.
    if std::env::var_os("CHAT_API_KEY").is_none() && std::env::var_os("CHAT_JWT_SECRET").is_none() {
        let errors = load(&common::root().join("examples/chat.toml")).check_secrets().unwrap_err();
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["api.keys", "plugins.jwt-auth.config.secret"], "{errors:?}");
    }
}
