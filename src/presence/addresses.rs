//! This node's open connections per client address, for `MAX_CONNECTIONS_PER_IP`. With Redis the
//! cap counts the whole cluster ([`super::redis::RedisPresence::admit_address`]): each node keeps
//! its own counts there beside its lease, and a dead node's stop counting when its lease expires.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Mutex, MutexGuard},
};

/// This node's open connections. The map holds only addresses with a connection open (at most
/// `MAX_CONNECTIONS` entries, the process's own cap on connections).
#[derive(Debug, Default)]
pub struct Addresses {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    per_ip: HashMap<IpAddr, u32>,
    total: usize,
}

impl Addresses {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a connection from `ip` in, unless this node already holds `cap` from it; pair
    /// every `true` with [`Addresses::release`].
    pub fn admit(&self, ip: IpAddr, cap: Option<u32>) -> bool {
        let mut inner = self.lock();
        let from_ip = inner.per_ip.entry(ip).or_default();
        if cap.is_some_and(|cap| *from_ip >= cap) {
            if *from_ip == 0 {
                inner.per_ip.remove(&ip);
            }
            return false;
        }
        *from_ip += 1;
        inner.total += 1;
        true
    }

    pub fn release(&self, ip: IpAddr) {
        let mut inner = self.lock();
        if let Some(n) = inner.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                inner.per_ip.remove(&ip);
            }
            inner.total -= 1;
        }
    }

    /// Open connections on this node.
    pub fn total(&self) -> usize {
        self.lock().total
    }

    /// Every address with its open connections.
    pub fn all(&self) -> Vec<(IpAddr, u32)> {
        self.lock().per_ip.iter().map(|(ip, n)| (*ip, *n)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_address_up_to_the_cap_and_forgets_empty_addresses() {
        let a = Addresses::default();
        let (one, two): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert!(a.admit(one, Some(2)) && a.admit(one, Some(2)));
        assert!(!a.admit(one, Some(2)), "the third from one address is refused");
        assert!(!a.admit(two, Some(0)));
        assert!(
            a.all().iter().all(|(ip, _)| *ip == one),
            "a refused address leaves no entry"
        );
        assert!(a.admit(two, None));
        assert_eq!(a.total(), 3);
        a.release(one);
        assert!(a.admit(one, Some(2)), "a place given back is taken again");
        a.release(one);
        a.release(one);
        a.release(two);
        a.release(two); // a release without admission changes nothing
        assert_eq!(a.total(), 0);
        assert!(a.all().is_empty());
    }
}
