//! State owned by one connection's task: its subscriptions, the user it is present as, and its
//! client-event budget. No locks: only that task touches it.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use crate::domain::ChannelName;

/// Most channels one connection may be subscribed to.
pub const MAX_SUBSCRIPTIONS: usize = 100;
/// Client events allowed per connection per second (Pusher's limit).
const CLIENT_EVENTS_PER_SECOND: u32 = 10;

#[derive(Default)]
pub struct Session {
    /// Subscribed channel → the user id it is present as (presence channels only).
    pub subscriptions: HashMap<ChannelName, Option<String>>,
    window_start: Option<Instant>,
    events_in_window: u32,
}

impl Session {
    /// Counts one client event; false when over 10 in the current second.
    pub fn allow_client_event(&mut self) -> bool {
        let now = Instant::now();
        match self.window_start {
            Some(start) if now.duration_since(start) < Duration::from_secs(1) => {
                self.events_in_window += 1;
            }
            _ => {
                self.window_start = Some(now);
                self.events_in_window = 1;
            }
        }
        self.events_in_window <= CLIENT_EVENTS_PER_SECOND
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eleventh_event_in_a_second_is_refused() {
        let mut s = Session::default();
        for _ in 0..10 {
            assert!(s.allow_client_event());
        }
        assert!(!s.allow_client_event());
    }
}
