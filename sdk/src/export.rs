//! The [`export!`](crate::export!) macro and the per-instance slot that holds the plugin value.

use std::cell::RefCell;

use serde_json::Value;

use crate::{Hooks, Plugin};

/// Holds an instance's plugin value between calls.
///
/// The macro puts one in a `thread_local!` static; a component instance is single-threaded,
/// so that is simply a static. Not part of the stable API.
#[doc(hidden)]
pub struct Slot<P>(RefCell<Option<P>>);

impl<P: Plugin> Slot<P> {
    /// An empty slot, filled by [`Slot::init`].
    pub const fn new() -> Self {
        Slot(RefCell::new(None))
    }

    /// Parses the config text, builds the plugin and returns the hooks it declares.
    ///
    /// Empty config text and `null` count as `{}`. Calling it again replaces the plugin value.
    pub fn init(&self, config: &str) -> Result<Hooks, String> {
        let config = if config.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(config).map_err(|error| format!("config is not valid JSON: {error}"))?
        };
        let config = match config {
            Value::Null => Value::Object(serde_json::Map::new()),
            config => config,
        };
        let plugin = P::init(config)?;
        let hooks = plugin.hooks();
        *self.0.borrow_mut() = Some(plugin);
        Ok(hooks)
    }

    /// Runs a hook on the plugin value.
    ///
    /// # Panics
    /// When `init` has not succeeded: the host broke the contract, and trapping (a panic is
    /// a trap in wasm) is safer than letting an unconfigured auth plugin wave clients in.
    pub fn with<R>(&self, hook: &str, f: impl FnOnce(&mut P) -> R) -> R {
        let mut slot = self.0.borrow_mut();
        let plugin = slot
            .as_mut()
            .unwrap_or_else(|| panic!("sluice plugin: `{hook}` called before a successful `init`"));
        f(plugin)
    }
}

impl<P: Plugin> Default for Slot<P> {
    fn default() -> Self {
        Self::new()
    }
}

/// Exports a [`Plugin`](crate::Plugin) type as the component's `sluice:plugin/handler`.
///
/// Use it once, at the root of a `cdylib` crate: `sluice_plugin_sdk::export!(MyPlugin);`.
/// The plugin value built by `init` lives in a static inside the expansion; each exported
/// function borrows it for one hook call. On native targets the exports are left out, so
/// the crate (`crate-type = ["cdylib", "rlib"]`) still builds for unit tests, which call
/// the trait methods directly.
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        #[allow(
            unsafe_code,
            dead_code,
            reason = "wit-bindgen's canonical-ABI export glue, which native builds leave out"
        )]
        const _: () = {
            struct __SluiceExport;

            ::std::thread_local! {
                static __SLUICE_PLUGIN: $crate::__private::Slot<$plugin> =
                    const { $crate::__private::Slot::new() };
            }

            impl $crate::__private::Guest for __SluiceExport {
                fn init(
                    config: ::std::string::String,
                ) -> ::std::result::Result<$crate::Hooks, ::std::string::String> {
                    __SLUICE_PLUGIN.with(|slot| slot.init(&config))
                }

                fn on_connect(request: $crate::ConnectRequest) -> $crate::ConnectVerdict {
                    __SLUICE_PLUGIN.with(|slot| {
                        slot.with("on-connect", |plugin| $crate::Plugin::on_connect(plugin, &request))
                    })
                }

                fn on_subscribe(
                    connection: $crate::Connection,
                    channel: ::std::string::String,
                ) -> $crate::SubscribeVerdict {
                    __SLUICE_PLUGIN.with(|slot| {
                        slot.with("on-subscribe", |plugin| {
                            $crate::Plugin::on_subscribe(plugin, &connection, &channel)
                        })
                    })
                }

                fn on_inbound(message: $crate::InboundMessage) -> $crate::InboundVerdict {
                    __SLUICE_PLUGIN.with(|slot| {
                        slot.with("on-inbound", |plugin| $crate::Plugin::on_inbound(plugin, &message))
                    })
                }

                fn on_outbound(message: $crate::OutboundMessage) -> $crate::OutboundVerdict {
                    __SLUICE_PLUGIN.with(|slot| {
                        slot.with("on-outbound", |plugin| $crate::Plugin::on_outbound(plugin, &message))
                    })
                }

                fn on_disconnect(connection: $crate::Connection, reason: $crate::DisconnectReason) {
                    __SLUICE_PLUGIN.with(|slot| {
                        slot.with("on-disconnect", |plugin| {
                            $crate::Plugin::on_disconnect(plugin, &connection, reason)
                        })
                    })
                }
            }

            // Only wasm gets the exported symbols: their `pkg/iface#fn` names do not
            // survive a native linker, and native builds exist for unit tests.
            #[cfg(target_arch = "wasm32")]
            $crate::__private::__export_plugin! {
                __SluiceExport with_types_in $crate::bindings
            }
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InboundMessage, InboundVerdict, Origin};

    /// Echoes its config back as the replacement data.
    struct Echo(Value);

    impl Plugin for Echo {
        fn init(config: Value) -> Result<Self, String> {
            if config.get("fail").is_some() {
                return Err("asked to fail".into());
            }
            Ok(Echo(config))
        }
        fn hooks(&self) -> Hooks {
            Hooks::ON_INBOUND
        }
        fn on_inbound(&mut self, _message: &InboundMessage) -> InboundVerdict {
            InboundVerdict::Replace(self.0.to_string())
        }
    }

    fn echo(slot: &Slot<Echo>) -> InboundVerdict {
        let message = InboundMessage {
            origin: Origin::Backend,
            connection: None,
            channel: "c".into(),
            data: "1".into(),
            tags: Vec::new(),
        };
        slot.with("on-inbound", |plugin| plugin.on_inbound(&message))
    }

    #[test]
    fn init_parses_config_and_reports_hooks() {
        let slot = Slot::<Echo>::new();
        assert_eq!(slot.init(r#"{"a":1}"#), Ok(Hooks::ON_INBOUND));
        assert_eq!(echo(&slot), InboundVerdict::Replace(r#"{"a":1}"#.into()));
        for empty in ["", "  ", "null"] {
            slot.init(empty).unwrap();
            assert_eq!(echo(&slot), InboundVerdict::Replace("{}".into()));
        }
    }

    #[test]
    fn init_errors_are_returned() {
        let slot = Slot::<Echo>::new();
        assert_eq!(slot.init(r#"{"fail":true}"#), Err("asked to fail".into()));
        let error = slot.init("{oops").unwrap_err();
        assert!(error.starts_with("config is not valid JSON: "), "{error}");
    }

    #[test]
    #[should_panic(expected = "`on-inbound` called before a successful `init`")]
    fn hooks_before_init_trap() {
        echo(&Slot::<Echo>::new());
    }
}
