//! State owned by one connection's task: its subscriptions, the user it is present as, and its
//! budgets for frames and client events. No locks: only that task touches it.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use crate::domain::ChannelName;

/// Most channels one connection may be subscribed to.
pub const MAX_SUBSCRIPTIONS: usize = 100;
/// Client events allowed per connection per second (Pusher's limit).
const CLIENT_EVENTS_PER_SECOND: u32 = 10;
/// Frames of any kind a connection may send per second; beyond, they are refused. Real clients
/// send a handful (subscriptions at start, a ping every two minutes, client events).
const FRAMES_PER_SECOND: u32 = 100;

/// Counts events in one-second windows.
#[derive(Default)]
struct Window {
    start: Option<Instant>,
    count: u32,
}

impl Window {
    /// Counts one; returns the count in the current second.
    fn tick(&mut self) -> u32 {
        let now = Instant::now();
        match self.start {
            Some(start) if now.duration_since(start) < Duration::from_secs(1) => self.count += 1,
            _ => {
                self.start = Some(now);
                self.count = 1;
            }
        }
        self.count
    }
}

#[derive(Default)]
pub struct Session {
    /// Subscribed channel → the user id it is present as (presence channels only).
    pub subscriptions: HashMap<ChannelName, Option<String>>,
    /// Presence channel → the version of the member list this socket was sent: member changes
    /// up to that version are in it and are not written again.
    pub member_lists: HashMap<ChannelName, u64>,
    /// The first user this connection proved to be (a signed subscription to its own channel,
    /// or presence `channel_data`): whom its client events count against.
    pub identity: Option<String>,
    client_events: Window,
    frames: Window,
}

impl Session {
    /// Counts one client event; false when over 10 in the current second.
    pub fn allow_client_event(&mut self) -> bool {
        self.client_events.tick() <= CLIENT_EVENTS_PER_SECOND
    }

    /// Counts one incoming frame; false when over the per-second budget.
    pub fn allow_frame(&mut self) -> bool {
        self.frames.tick() <= FRAMES_PER_SECOND
    }

    /// True for the first refused frame of the current second (to say so once, not per frame).
    pub fn first_refusal_this_second(&self) -> bool {
        self.frames.count == FRAMES_PER_SECOND + 1
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

    #[test]
    fn frames_over_the_budget_are_refused_and_said_once() {
        let mut s = Session::default();
        for _ in 0..FRAMES_PER_SECOND {
            assert!(s.allow_frame());
        }
        assert!(!s.allow_frame());
        assert!(s.first_refusal_this_second());
        assert!(!s.allow_frame());
        assert!(!s.first_refusal_this_second());
    }
}
