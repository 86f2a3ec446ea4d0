//! The live plugin table: every loaded plugin and every route's chain, swapped as one on
//! reload, so that each message runs through either the old chains or the new ones. Routes
//! look their chain up here per message instead of holding it.

use super::cache::content_hash;
use super::chain::Chain;
use super::sandbox::{LoadError, LoadOptions, Sandbox};
use crate::config::Config;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// What one config's plugins and chains are.
#[derive(Default)]
pub struct Table {
    /// Chains by route path.
    chains: BTreeMap<String, Arc<Chain>>,
    /// Loaded plugins by name.
    plugins: BTreeMap<String, Arc<Sandbox>>,
}

/// What a new table did with each plugin, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginChanges {
    /// Plugins compiled (or fetched from a cache) and initialised anew: added, or whose
    /// section or file changed.
    pub loaded: Vec<String>,
    /// Plugins kept as they were, instances and per-connection state included.
    pub kept: Vec<String>,
    /// Plugins no longer in the config.
    pub removed: Vec<String>,
}

impl Table {
    /// Loads every plugin of `config` and builds its routes' chains. With `previous`, a
    /// plugin whose section and file bytes are unchanged is kept rather than reloaded, and
    /// a reloaded one keeps counting into the same metrics. Compiles on blocking threads
    /// and runs `init` on a trial instance of each new plugin.
    pub async fn load(
        config: &Config,
        previous: Option<&Table>,
    ) -> Result<(Table, PluginChanges), Vec<LoadError>> {
        let options = LoadOptions::from_server(&config.server);
        let mut plugins = BTreeMap::new();
        let mut changes = PluginChanges::default();
        let mut errors = Vec::new();
        for (name, plugin) in &config.plugins {
            let old = previous.and_then(|t| t.plugins.get(name));
            if let Some(old) = old
                && old.config == *plugin
                && std::fs::read(&plugin.path).is_ok_and(|bytes| content_hash(&bytes) == old.content)
                && super::settings::settings(plugin).is_ok_and(|s| s.files == old.files)
            {
                plugins.insert(name.clone(), old.clone());
                changes.kept.push(name.clone());
                continue;
            }
            match Sandbox::load(name, plugin, &options, old.map(|o| o.metrics_handle())).await {
                Ok(sandbox) => {
                    tracing::info!(plugin = name, hooks = ?sandbox.hooks, source = ?sandbox.source, "plugin loaded");
                    plugins.insert(name.clone(), Arc::new(sandbox));
                    changes.loaded.push(name.clone());
                }
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        if let Some(previous) = previous {
            changes.removed =
                previous.plugins.keys().filter(|name| !plugins.contains_key(*name)).cloned().collect();
        }
        let chains = config
            .routes
            .iter()
            .map(|route| {
                let chain = Chain::new(route.plugins.iter().map(|name| plugins[name].clone()).collect());
                (route.path.clone(), Arc::new(chain))
            })
            .collect();
        Ok((Table { chains, plugins }, changes))
    }

    /// Every loaded plugin, by name.
    pub fn plugins(&self) -> impl Iterator<Item = &Arc<Sandbox>> {
        self.plugins.values()
    }
}

/// The current [`Table`], shared by every route and swapped atomically on reload.
pub struct Live(RwLock<Arc<Table>>);

impl Live {
    /// Starts with `table`.
    pub fn new(table: Table) -> Self {
        Self(RwLock::new(Arc::new(table)))
    }

    /// The table in force now.
    pub fn current(&self) -> Arc<Table> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The chain of the route at `path` in the table in force now. A route the current
    /// table lacks (removed by a reload; it stays until a restart) gets an empty chain
    /// only if it never had one, which cannot happen: [`Live::swap`] keeps old chains.
    pub fn chain(&self, path: &str) -> Arc<Chain> {
        let table = self.0.read().unwrap_or_else(|e| e.into_inner());
        table.chains.get(path).cloned().unwrap_or_default()
    }

    /// Puts `table` in force; chains of routes it lacks are carried over from the old
    /// table, so connections on a route removed from the config keep being filtered.
    pub fn swap(&self, mut table: Table) {
        let keep = table.plugins.values().map(|p| p.content).collect();
        let mut current = self.0.write().unwrap_or_else(|e| e.into_inner());
        for (path, chain) in &current.chains {
            table.chains.entry(path.clone()).or_insert_with(|| chain.clone());
        }
        *current = Arc::new(table);
        drop(current);
        super::engine::retain_compiled(&keep);
    }
}
