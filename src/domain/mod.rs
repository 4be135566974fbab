//! Domain values, parsed once at the edge and trusted everywhere after: ids, account fields,
//! message bodies, channel names. Nothing here knows about HTTP or SQL.

mod account;
pub mod channel;
pub mod chat_features;
mod file;
mod ids;
mod message;
pub mod rules;

pub use account::{Email, Password, UserName, is_invisible};
pub use channel::{ChannelKind, ChannelName, UserChannel};
pub use file::FileId;
pub use ids::{GroupId, MessageId, UserId};
pub use message::{ClientId, GroupName, MessageBody};

/// Why an input value was refused: a stable snake_case `code` for clients and a human message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    pub code: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// A timestamp as the API shows it: RFC 3339 UTC with milliseconds (`2026-11-21T20:08:55.123Z`).
pub fn rfc3339_string(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Serialises a timestamp with [`rfc3339_string`].
pub fn rfc3339<S: serde::Serializer>(t: &chrono::DateTime<chrono::Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339_string(t))
}

/// Serialises an optional timestamp with [`rfc3339_string`] (for fields skipped when `None`).
pub fn rfc3339_opt<S: serde::Serializer>(t: &Option<chrono::DateTime<chrono::Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}
