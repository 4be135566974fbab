//! Socket ids: `digits.digits`, drawn from a CSPRNG (pusher-http-php and Laravel reject any
//! other shape, and a guessable id would let one client's signature be replayed by another).

use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Serialised (between nodes) as its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SocketId(u64);

impl SocketId {
    /// A fresh random id.
    pub fn random() -> Self {
        let mut rng = rand::rng();
        // Two halves each below 10^9 keep the text short and always `digits.digits`.
        let hi: u64 = rng.random_range(1..1_000_000_000);
        let lo: u64 = rng.random_range(1..1_000_000_000);
        Self(hi * 1_000_000_000 + lo)
    }

    /// Parses `digits.digits` as a client presents it to the auth endpoint.
    pub fn parse(raw: &str) -> Option<Self> {
        let (hi, lo) = raw.split_once('.')?;
        let digits = |s: &str| !s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(hi) || !digits(lo) {
            return None;
        }
        Some(Self(hi.parse::<u64>().ok()? * 1_000_000_000 + lo.parse::<u64>().ok()?))
    }
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0 / 1_000_000_000, self.0 % 1_000_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_digits_dot_digits_and_round_trip() {
        for _ in 0..100 {
            let id = SocketId::random();
            let text = id.to_string();
            let (a, b) = text.split_once('.').unwrap();
            assert!(a.bytes().all(|c| c.is_ascii_digit()) && b.bytes().all(|c| c.is_ascii_digit()));
            assert_eq!(SocketId::parse(&text), Some(id));
        }
        assert_ne!(SocketId::random(), SocketId::random());
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in ["", "1", "1.", ".1", "1.2.3", "a.1", "1.-2", "1234567890.1", " 1.2"] {
            assert_eq!(SocketId::parse(bad), None, "{bad:?}");
        }
    }
}
