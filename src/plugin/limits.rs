//! What one plugin instance may allocate: `memory` bytes of linear memory in total, over
//! every memory its core instances create (a component has several: its own, the WASI
//! adapter's, a JS or Python runtime's), tables of at most `max_table_elements`, and at
//! most `max_core_instances` instances, tables and memories. A per-memory cap (wasmtime's
//! `StoreLimits`) would let an instance reach `max_core_instances` × `memory`.

use wasmtime::ResourceLimiter;

/// The limiter of one instance's store.
#[derive(Debug)]
pub struct Limits {
    /// Bytes of linear memory allowed, all memories together.
    memory: usize,
    /// Bytes granted so far.
    used: usize,
    table_elements: usize,
    core: usize,
}

impl Limits {
    /// Caps from a plugin's `memory`, `max_table_elements` and `max_core_instances`.
    pub fn new(memory: usize, table_elements: usize, core: usize) -> Self {
        Self { memory, used: 0, table_elements, core }
    }
}

impl ResourceLimiter for Limits {
    fn memory_growing(&mut self, current: usize, desired: usize, _: Option<usize>) -> wasmtime::Result<bool> {
        let grow = desired.saturating_sub(current);
        // A growth that fails after this (rare) stays counted: the budget errs on the
        // strict side, never the lenient one.
        if self.used.saturating_add(grow) > self.memory {
            return Ok(false);
        }
        self.used += grow;
        Ok(true)
    }

    fn table_growing(&mut self, _: usize, desired: usize, _: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_elements)
    }

    fn instances(&self) -> usize {
        self.core
    }

    fn tables(&self) -> usize {
        self.core
    }

    fn memories(&self) -> usize {
        self.core
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_memory_draws_on_one_budget() {
        let mut limits = Limits::new(100, 10, 4);
        assert!(limits.memory_growing(0, 60, None).unwrap());
        // A second memory may not take what the first already holds.
        assert!(!limits.memory_growing(0, 60, None).unwrap());
        assert!(limits.memory_growing(0, 40, None).unwrap());
        assert!(!limits.memory_growing(60, 61, None).unwrap());
        assert_eq!(limits.used, 100);
        assert!(limits.table_growing(0, 10, None).unwrap() && !limits.table_growing(10, 11, None).unwrap());
    }
}
