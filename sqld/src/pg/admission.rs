//! Bounds the connections each client address may hold open before they
//! authenticate. A client that opens connections and never finishes its
//! startup (slowloris) would otherwise fill `--max-connections` for
//! everyone, one `--startup-timeout` after another; with this bound one
//! address can hold only a few slots that way.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::metrics::METRICS;

/// Counts unauthenticated connections per address.
#[derive(Debug)]
pub struct Admission {
    max_per_address: usize,
    authenticating: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place among its address's unauthenticated ones; freed
/// when dropped (authentication done, or the connection gone).
pub struct Authenticating {
    admission: Arc<Admission>,
    address: IpAddr,
}

impl Admission {
    pub fn new(max_per_address: usize) -> Arc<Self> {
        Arc::new(Admission {
            max_per_address,
            authenticating: Mutex::default(),
        })
    }

    /// A place for a new connection from `address`, unless that address
    /// already holds the most allowed.
    pub fn enter(self: &Arc<Self>, address: IpAddr) -> Option<Authenticating> {
        let mut counts = self.lock();
        let count = counts.entry(address).or_default();
        if *count >= self.max_per_address {
            return None;
        }
        *count += 1;
        METRICS.connections_authenticating.inc();
        Some(Authenticating {
            admission: self.clone(),
            address,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.authenticating
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Authenticating {
    fn drop(&mut self) {
        METRICS.connections_authenticating.dec();
        let mut counts = self.admission.lock();
        if let Some(count) = counts.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_share_and_gets_places_back() {
        let admission = Admission::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = admission.enter(a).unwrap();
        let _second = admission.enter(a).unwrap();
        assert!(
            admission.enter(a).is_none(),
            "a third from the same address"
        );
        assert!(
            admission.enter(b).is_some(),
            "other addresses are not affected"
        );
        drop(first);
        assert!(admission.enter(a).is_some(), "a freed place is reusable");
    }
}
