//! Who may hold a connection slot. Connections still authenticating are
//! counted apart from authenticated ones: connections that never finish
//! their startup (slowloris), from however many addresses, can hold at
//! most `--max-authenticating` places (and one address at most
//! `--max-authenticating-per-address`), never the `--max-connections`
//! places of authenticated sessions. A client takes its authenticated place
//! when its authentication succeeds, and is refused (53300) if none is left.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::metrics::Metrics;

#[derive(Debug, Clone, Copy)]
pub struct AdmissionLimits {
    /// Authenticated sessions (`--max-connections`).
    pub max_connections: usize,
    /// Connections still authenticating, all addresses together.
    pub max_authenticating: usize,
    /// Connections still authenticating from one address.
    pub max_authenticating_per_address: usize,
}

#[derive(Debug)]
pub struct Admission {
    limits: AdmissionLimits,
    counts: Mutex<Counts>,
    metrics: Arc<Metrics>,
}

#[derive(Debug, Default)]
struct Counts {
    authenticating: HashMap<IpAddr, usize>,
    authenticating_total: usize,
    authenticated: usize,
}

/// Why a connection was refused a place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    AddressAuthenticating,
    Authenticating,
    Authenticated,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Refusal::AddressAuthenticating => {
                "too many connections from this address are still authenticating"
            }
            Refusal::Authenticating => "too many connections are still authenticating",
            Refusal::Authenticated => "sorry, too many clients already",
        }
    }
}

/// One connection's place while it authenticates; freed when dropped.
pub struct Authenticating {
    admission: Arc<Admission>,
    address: IpAddr,
}

/// One authenticated session's place; freed when dropped.
pub struct Authenticated {
    admission: Arc<Admission>,
}

impl Admission {
    pub fn new(limits: AdmissionLimits, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Admission {
            limits,
            counts: Mutex::default(),
            metrics,
        })
    }

    /// How many sockets may be open at once: every authenticated and
    /// authenticating place.
    pub fn max_sockets(limits: AdmissionLimits) -> usize {
        limits.max_connections + limits.max_authenticating
    }

    /// A place for a new connection from `address` to authenticate in.
    pub fn enter(self: &Arc<Self>, address: IpAddr) -> Result<Authenticating, Refusal> {
        let mut counts = self.lock();
        if counts.authenticating_total >= self.limits.max_authenticating {
            return Err(Refusal::Authenticating);
        }
        let count = counts.authenticating.entry(address).or_default();
        if *count >= self.limits.max_authenticating_per_address {
            return Err(Refusal::AddressAuthenticating);
        }
        *count += 1;
        counts.authenticating_total += 1;
        self.metrics.connections_authenticating.inc();
        Ok(Authenticating {
            admission: self.clone(),
            address,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Authenticating {
    /// Authentication succeeded: trades this place for an authenticated
    /// one, if one is free.
    pub fn authenticated(self) -> Result<Authenticated, Refusal> {
        let admission = self.admission.clone();
        drop(self);
        let mut counts = admission.lock();
        if counts.authenticated >= admission.limits.max_connections {
            admission.metrics.connections_rejected.inc();
            return Err(Refusal::Authenticated);
        }
        counts.authenticated += 1;
        drop(counts);
        Ok(Authenticated { admission })
    }
}

impl Drop for Authenticating {
    fn drop(&mut self) {
        self.admission.metrics.connections_authenticating.dec();
        let mut counts = self.admission.lock();
        counts.authenticating_total -= 1;
        if let Some(count) = counts.authenticating.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.authenticating.remove(&self.address);
            }
        }
    }
}

impl Drop for Authenticated {
    fn drop(&mut self) {
        self.admission.lock().authenticated -= 1;
    }
}

/// A connection's place, kept in its session extensions so the startup
/// handler can trade it when authentication succeeds, and freed with the
/// connection.
pub struct Place(Mutex<PlaceState>);

enum PlaceState {
    Authenticating(Authenticating),
    Authenticated { _held: Authenticated },
    Gone,
}

impl Place {
    pub fn new(authenticating: Authenticating) -> Self {
        Place(Mutex::new(PlaceState::Authenticating(authenticating)))
    }

    /// Takes an authenticated place for the connection (once; later calls
    /// keep the one it has).
    pub fn authenticate(&self) -> Result<(), Refusal> {
        let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match std::mem::replace(&mut *state, PlaceState::Gone) {
            PlaceState::Authenticating(a) => {
                *state = PlaceState::Authenticated {
                    _held: a.authenticated()?,
                };
                Ok(())
            }
            other => {
                *state = other;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(per_address: usize, authenticating: usize, connections: usize) -> Arc<Admission> {
        Admission::new(
            AdmissionLimits {
                max_connections: connections,
                max_authenticating: authenticating,
                max_authenticating_per_address: per_address,
            },
            Arc::new(Metrics::new()),
        )
    }

    #[test]
    fn an_address_holds_at_most_its_share_and_gets_places_back() {
        let admission = admission(2, 100, 100);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = admission.enter(a).unwrap();
        let _second = admission.enter(a).unwrap();
        assert_eq!(
            admission.enter(a).err(),
            Some(Refusal::AddressAuthenticating),
            "a third from the same address"
        );
        assert!(
            admission.enter(b).is_ok(),
            "other addresses are not affected"
        );
        drop(first);
        assert!(admission.enter(a).is_ok(), "a freed place is reusable");
    }

    #[test]
    fn authenticating_connections_do_not_take_authenticated_places() {
        let admission = admission(10, 2, 1);
        let address = |i| IpAddr::from([10, 0, 0, i]);
        let first = admission.enter(address(1)).unwrap();
        let second = admission.enter(address(2)).unwrap();
        assert_eq!(
            admission.enter(address(3)).err(),
            Some(Refusal::Authenticating)
        );
        // Authenticating does not need a free authenticated place until
        // it succeeds, and frees its authenticating place either way.
        let session = first.authenticated().unwrap();
        assert_eq!(second.authenticated().err(), Some(Refusal::Authenticated));
        let third = admission.enter(address(3)).unwrap();
        drop(session);
        assert!(third.authenticated().is_ok());
    }

    #[test]
    fn places_are_counted_in_the_servers_metrics() {
        let admission = admission(10, 10, 1);
        let metrics = admission.metrics.clone();
        let address = |i| IpAddr::from([10, 0, 0, i]);
        let first = admission.enter(address(1)).unwrap();
        let second = admission.enter(address(2)).unwrap();
        assert_eq!(metrics.connections_authenticating.get(), 2);
        let _session = first.authenticated().unwrap();
        assert_eq!(metrics.connections_authenticating.get(), 1);
        assert!(second.authenticated().is_err());
        assert_eq!(metrics.connections_authenticating.get(), 0);
        assert_eq!(metrics.connections_rejected.get(), 1);
    }
}
