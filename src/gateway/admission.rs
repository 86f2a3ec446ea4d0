//! Admission before a session exists: TCP connections not (yet) upgraded to WebSocket
//! (`max_pending_connections`: handshakes in progress and plain HTTP clients), and
//! WebSocket connections per client IP address (`max_connections_per_ip`). Each is a
//! counter held by a guard for as long as the connection is in that state.

use crate::config::ServerConfig;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The counts, shared with the guards.
pub struct Admission(Arc<Inner>);

struct Inner {
    pending: AtomicUsize,
    max_pending: usize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    max_per_ip: usize,
}

/// One TCP connection counted as pending until dropped.
pub struct Pending(Arc<Inner>);

/// One WebSocket connection counted against its IP address until dropped (nothing when
/// there is no per-IP limit).
pub struct PerIp(Option<(Arc<Inner>, IpAddr)>);

impl Admission {
    /// Counts with the limits `[server]` sets.
    pub fn new(server: &ServerConfig) -> Self {
        Self(Arc::new(Inner {
            pending: AtomicUsize::new(0),
            max_pending: server.max_pending_connections,
            per_ip: Mutex::default(),
            max_per_ip: server.max_connections_per_ip,
        }))
    }

    /// Counts a new TCP connection, or `None` when `max_pending_connections` are open.
    pub fn pending(&self) -> Option<Pending> {
        let before = self.0.pending.fetch_add(1, Ordering::AcqRel);
        let guard = Pending(self.0.clone());
        (before < self.0.max_pending).then_some(guard)
    }

    /// TCP connections not upgraded now (`sluice_pending_connections`).
    pub fn pending_count(&self) -> usize {
        self.0.pending.load(Ordering::Relaxed)
    }

    /// Counts a WebSocket connection from `ip`, or `None` when that address has
    /// `max_connections_per_ip` already. IPv4 addresses mapped into IPv6 count as IPv4.
    pub fn per_ip(&self, ip: IpAddr) -> Option<PerIp> {
        if self.0.max_per_ip == 0 {
            return Some(PerIp(None));
        }
        let ip = ip.to_canonical();
        let mut counts = self.0.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(ip).or_default();
        if *count >= self.0.max_per_ip {
            if *count == 0 {
                counts.remove(&ip);
            }
            return None;
        }
        *count += 1;
        Some(PerIp(Some((self.0.clone(), ip))))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for PerIp {
    fn drop(&mut self) {
        let Some((inner, ip)) = self.0.take() else { return };
        let mut counts = inner.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_give_their_slots_back() {
        let server =
            ServerConfig { max_pending_connections: 2, max_connections_per_ip: 1, ..Default::default() };
        let admission = Admission::new(&server);
        let (a, b) = (admission.pending().unwrap(), admission.pending().unwrap());
        assert!(admission.pending().is_none());
        drop(a);
        assert!(admission.pending().is_some());
        drop(b);
        let one: IpAddr = "10.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let first = admission.per_ip(one).unwrap();
        assert!(admission.per_ip(mapped).is_none(), "the same address in IPv6 form");
        assert!(admission.per_ip("10.0.0.2".parse().unwrap()).is_some());
        drop(first);
        assert!(admission.per_ip(one).is_some());
        assert!(admission.0.per_ip.lock().unwrap().is_empty(), "no entry is left for addresses gone");
    }
}
