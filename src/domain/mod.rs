//! Domain values, parsed once at the edge and trusted everywhere after: ids, account fields,
//! message bodies, channel names. Nothing here knows about HTTP or SQL.

mod account;
mod ids;

pub use account::{Email, Password, UserName};
pub use ids::{GroupId, MessageId, UserId};

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
