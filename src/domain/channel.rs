//! Channel names, parsed once: charset and length per the Pusher rules, and the kind fixed by
//! prefix (longest first, so `private-encrypted-` is never taken for `private-`). chatbox's own
//! per-user channels are recognised here too, so nothing else inspects channel strings.

use std::{fmt, sync::Arc};

use super::{Invalid, UserId};

/// Longest channel name Pusher accepts, prefix included.
pub const MAX_CHANNEL_LEN: usize = 164;

/// Prefix of each user's one-to-one channel: `private-individual.message.{userId}`.
pub const INDIVIDUAL_PREFIX: &str = "private-individual.message.";
/// Prefix of each user's group channel: `private-group.message.{userId}`.
pub const GROUP_PREFIX: &str = "private-group.message.";
/// The presence channel every signed-in user may join.
pub const ONLINE: &str = "presence-online";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    Public,
    Private,
    PrivateEncrypted,
    Presence,
}

/// One of the two private channels each user owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserChannel {
    Individual(UserId),
    Group(UserId),
}

impl UserChannel {
    pub fn user(self) -> UserId {
        match self {
            Self::Individual(u) | Self::Group(u) => u,
        }
    }

    /// The channel name as clients see it.
    pub fn name(self) -> String {
        match self {
            Self::Individual(u) => format!("{INDIVIDUAL_PREFIX}{u}"),
            Self::Group(u) => format!("{GROUP_PREFIX}{u}"),
        }
    }
}

/// A valid channel name and its kind.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ChannelName {
    raw: Arc<str>,
    kind: ChannelKind,
}

impl ChannelName {
    /// # Errors
    /// `invalid_channel` when empty, longer than 164 bytes, or holding a character outside
    /// `A-Za-z0-9_-=@,.;`.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let valid_char = |b: u8| b.is_ascii_alphanumeric() || b"_-=@,.;".contains(&b);
        if raw.is_empty() || raw.len() > MAX_CHANNEL_LEN || !raw.bytes().all(valid_char) {
            return Err(Invalid::new(
                "invalid_channel",
                format!("channel names are 1 to {MAX_CHANNEL_LEN} characters of A-Z a-z 0-9 _ - = @ , . ;"),
            ));
        }
        // A user's own channel has one spelling: `private-individual.message.01` would otherwise
        // be signed and subscribed beside `…1`, and unsubscribing one would remove the other.
        let own_id = raw
            .strip_prefix(INDIVIDUAL_PREFIX)
            .or_else(|| raw.strip_prefix(GROUP_PREFIX));
        if own_id.is_some_and(|id| id.parse::<UserId>().is_err()) {
            return Err(Invalid::new(
                "invalid_channel",
                "a user's channel ends in that user's id, written without leading zeros",
            ));
        }
        let kind = match raw {
            r if r.starts_with("private-encrypted-") => ChannelKind::PrivateEncrypted,
            r if r.starts_with("presence-") => ChannelKind::Presence,
            r if r.starts_with("private-") => ChannelKind::Private,
            _ => ChannelKind::Public,
        };
        Ok(Self { raw: raw.into(), kind })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn kind(&self) -> ChannelKind {
        self.kind
    }

    /// Private and presence channels need a signature to subscribe.
    pub fn needs_auth(&self) -> bool {
        self.kind != ChannelKind::Public
    }

    /// Which user's own channel this is, if it is one (`private-individual.message.7` → user 7).
    pub fn user_channel(&self) -> Option<UserChannel> {
        if let Some(id) = self.raw.strip_prefix(INDIVIDUAL_PREFIX) {
            return id.parse().ok().map(UserChannel::Individual);
        }
        if let Some(id) = self.raw.strip_prefix(GROUP_PREFIX) {
            return id.parse().ok().map(UserChannel::Group);
        }
        None
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl fmt::Debug for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.raw)
    }
}

impl From<UserChannel> for ChannelName {
    fn from(c: UserChannel) -> Self {
        Self {
            raw: c.name().into(),
            kind: ChannelKind::Private,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_the_longest_prefix() {
        let kind = |s| ChannelName::parse(s).unwrap().kind();
        assert_eq!(kind("private-encrypted-x"), ChannelKind::PrivateEncrypted);
        assert_eq!(kind("private-x"), ChannelKind::Private);
        assert_eq!(kind("presence-online"), ChannelKind::Presence);
        assert_eq!(kind("news"), ChannelKind::Public);
        assert!(!ChannelName::parse("news").unwrap().needs_auth());
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(ChannelName::parse("").is_err());
        assert!(ChannelName::parse("a b").is_err());
        assert!(ChannelName::parse("#server-to-user-1").is_err());
        assert!(ChannelName::parse(&"a".repeat(165)).is_err());
        assert!(ChannelName::parse(&"a".repeat(164)).is_ok());
    }

    #[test]
    fn user_channels_are_recognised() {
        let c = |s| ChannelName::parse(s).unwrap().user_channel();
        assert_eq!(
            c("private-individual.message.7"),
            Some(UserChannel::Individual(UserId(7)))
        );
        assert_eq!(c("private-group.message.12"), Some(UserChannel::Group(UserId(12))));
        assert_eq!(c("private-other"), None);
        for alias in [
            "private-group.message.0",
            "private-group.message.1x",
            "private-individual.message.01",
            "private-group.message.007",
            "private-individual.message.",
        ] {
            assert!(ChannelName::parse(alias).is_err(), "{alias:?} is refused");
        }
        let name: ChannelName = UserChannel::Group(UserId(3)).into();
        assert_eq!(name.as_str(), "private-group.message.3");
        assert_eq!(name.user_channel(), Some(UserChannel::Group(UserId(3))));
    }
}
