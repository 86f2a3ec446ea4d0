//! Rust bindings for the `sluice:plugin@0.2.0` world in `wit/plugin.wit`, generated once.
//!
//! Plugin authors never use this crate directly: `sluice-plugin-sdk` re-exports the types
//! and `wit-bindgen`, and its `export!` macro calls the generated export macro. The crate
//! exists only because the generated canonical-ABI glue needs `unsafe`, which the root
//! workspace forbids in every crate that inherits its lints.

pub use wit_bindgen;

wit_bindgen::generate!({
    world: "plugin",
    // The file alone: with `wit/deps/` (the older versions) in view, every generated
    // name would carry its version.
    path: "../../wit/plugin.wit",
    pub_export_macro: true,
    export_macro_name: "__export_plugin",
    // Where plugin crates find these bindings: through the SDK's re-export.
    default_bindings_module: "::sluice_plugin_sdk::bindings",
    // Verdicts and messages compare in plugin unit tests.
    additional_derives: [PartialEq, Eq],
});
