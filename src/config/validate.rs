//! Checks that span sections: routes name known plugins, values make sense together.

use super::load::Spans;
use super::model::Config;
use std::collections::HashSet;
use std::ops::Range;

/// Reports every cross-field problem through `report(span, key, message)`.
pub(super) fn check(config: &Config, spans: &Spans, report: &mut dyn FnMut(Range<usize>, &str, String)) {
    let server = &config.server;
    let at = spans.server.clone();
    if server.listen.parse::<std::net::SocketAddr>().is_err() {
        report(
            at.clone(),
            "server.listen",
            format!("`{}` is not an address such as \"127.0.0.1:8080\"", server.listen),
        );
    }
    if server.max_connections == 0 {
        report(at.clone(), "server.max_connections", "must be at least 1".into());
    }
    if server.max_channels == 0 {
        report(at.clone(), "server.max_channels", "must be at least 1".into());
    }
    if server.subscribe_rate != 0 && (server.subscribe_rate as usize) < server.max_channels_per_connection {
        report(
            at.clone(),
            "server.subscribe_rate",
            format!(
                "must be 0 or at least max_channels_per_connection ({}): a reconnecting client resubscribes all its channels at once",
                server.max_channels_per_connection
            ),
        );
    }
    if server.max_pending_connections == 0 {
        report(at.clone(), "server.max_pending_connections", "must be at least 1".into());
    }
    if server.heartbeat_interval.0.is_zero() {
        report(at.clone(), "server.heartbeat_interval", "must be longer than 0s".into());
    }
    if server.client_timeout.0 <= server.heartbeat_interval.0 {
        report(at.clone(), "server.client_timeout", "must be longer than heartbeat_interval".into());
    }
    if server.watch.is_some_and(|every| every.0.is_zero()) {
        report(
            at.clone(),
            "server.watch",
            "must be longer than 0s (leave it out to turn watching off)".into(),
        );
    }
    if server.send_queue.0 < server.max_message_size.0 {
        report(at, "server.send_queue", "must hold at least one message of max_message_size".into());
    }

    for (name, span) in &spans.plugins {
        let plugin = &config.plugins[name];
        let key = |field: &str| format!("plugins.{name}.{field}");
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            report(
                span.clone(),
                &format!("plugins.{name}"),
                "a plugin name may hold only letters, digits, `-` and `_`".into(),
            );
        }
        if plugin.instances == 0 {
            report(span.clone(), &key("instances"), "must be at least 1".into());
        }
        if plugin.deadline.0.is_zero() {
            report(span.clone(), &key("deadline"), "must be longer than 0s".into());
        }
        if plugin.memory.0 < 1 << 20 {
            report(span.clone(), &key("memory"), "must be at least 1MiB".into());
        }
        if plugin.max_table_elements == 0 {
            report(span.clone(), &key("max_table_elements"), "must be at least 1".into());
        }
        if plugin.max_core_instances == 0 {
            report(span.clone(), &key("max_core_instances"), "must be at least 1".into());
        }
        if !plugin.config_files.is_empty() && !matches!(plugin.config, None | Some(toml::Value::Table(_))) {
            report(span.clone(), &key("config"), "must be a table when `config_files` is set".into());
        }
        for file in plugin.config_files.keys() {
            if let Some(toml::Value::Table(table)) = &plugin.config
                && table.contains_key(file)
            {
                let why = format!("`{file}` is also in `config`: give it in one place");
                report(span.clone(), &key(&format!("config_files.{file}")), why);
            }
        }
    }

    let mut paths = HashSet::new();
    for (i, (route, span)) in config.routes.iter().zip(&spans.routes).enumerate() {
        if !route.path.starts_with('/') {
            report(
                span.clone(),
                &format!("routes[{i}].path"),
                format!("`{}` must start with `/`", route.path),
            );
        }
        if route.path.starts_with("/api/") {
            report(
                span.clone(),
                &format!("routes[{i}].path"),
                "paths under /api/ are the gateway's own".into(),
            );
        }
        if !paths.insert(route.path.as_str()) {
            report(
                span.clone(),
                &format!("routes[{i}].path"),
                format!("`{}` is already a route", route.path),
            );
        }
        for plugin in &route.plugins {
            if !config.plugins.contains_key(plugin) {
                report(
                    span.clone(),
                    &format!("routes[{i}].plugins"),
                    format!("no plugin named `{plugin}` in [plugins]"),
                );
            }
        }
    }
    if config.routes.is_empty() {
        report(0..0, "routes", "no routes: add a `[[routes]]` with a `path`".into());
    }

    if let Some(api) = &config.api {
        if api.keys.is_empty() || api.keys.iter().any(String::is_empty) {
            report(spans.api.clone(), "api.keys", "needs at least one key, none of them empty".into());
        }
        if let Some(route) = &api.route
            && !config.routes.iter().any(|r| &r.path == route)
        {
            report(spans.api.clone(), "api.route", format!("no route with path `{route}`"));
        }
    }

    if let Some(admin) = &config.admin {
        if admin.listen.parse::<std::net::SocketAddr>().is_err() {
            report(
                spans.admin.clone(),
                "admin.listen",
                format!("`{}` is not an address such as \"127.0.0.1:9090\"", admin.listen),
            );
        }
        if admin.keys.is_empty() || admin.keys.iter().any(String::is_empty) {
            report(spans.admin.clone(), "admin.keys", "needs at least one key, none of them empty".into());
        }
    }

    config.broker.check(&spans.broker, report);

    let mut mounts = HashSet::new();
    for (i, (mount, span)) in config.statics.iter().zip(&spans.statics).enumerate() {
        let key = format!("static[{i}].path");
        let prefix = mount.prefix();
        if !mount.path.starts_with('/') {
            report(span.clone(), &key, format!("`{}` must start with `/`", mount.path));
        } else if mount.path.split('/').any(|s| s == "." || s == "..") {
            report(span.clone(), &key, format!("`{}` must not hold `.` or `..` segments", mount.path));
        } else if prefix.starts_with("/api/") {
            report(span.clone(), &key, "paths under /api/ are the gateway's own".into());
        } else if !mounts.insert(prefix) {
            report(span.clone(), &key, format!("`{}` is already mounted", mount.path));
        }
        if mount.index.is_empty() || mount.index.contains(['/', '\\']) || mount.index.starts_with('.') {
            report(span.clone(), &format!("static[{i}].index"), "must be a plain file name".into());
        }
    }

    for (i, (channel, span)) in config.channels.iter().zip(&spans.channels).enumerate() {
        if let Err(why) = crate::protocol::check_channel(&channel.pattern) {
            report(span.clone(), &format!("channels[{i}].pattern"), why);
        }
    }
}
