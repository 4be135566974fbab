//! Message and group fields.

use super::Invalid;

/// A message body: 1 to 4,000 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody(String);

impl MessageBody {
    pub const MAX_CHARS: usize = 4000;

    /// # Errors
    /// `invalid_body` when empty after trimming or longer than 4,000 characters.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let b = raw.trim();
        if b.is_empty() || b.chars().count() > Self::MAX_CHARS {
            return Err(Invalid::new(
                "invalid_message",
                format!("body must be 1 to {} characters", Self::MAX_CHARS),
            ));
        }
        Ok(Self(b.to_owned()))
    }

    /// The empty body of a message that carries attachments and no text (the only message
    /// without text: [`MessageBody::parse`] refuses an empty one).
    pub fn empty() -> Self {
        Self(String::new())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The client's own id for a send, making retries idempotent: 1 to 64 printable characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientId(String);

impl ClientId {
    /// # Errors
    /// `invalid_client_id` when empty, over 64 characters or holding control characters.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if raw.is_empty() || raw.chars().count() > 64 || raw.chars().any(char::is_control) {
            return Err(Invalid::new(
                "invalid_client_id",
                "client_id must be 1 to 64 printable characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A group name: 1 to 100 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupName(String);

impl GroupName {
    pub const MAX_CHARS: usize = 100;

    /// # Errors
    /// `invalid_group_name` when empty, too long or holding control characters.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let n = raw.trim();
        if n.is_empty() || n.chars().count() > Self::MAX_CHARS || n.chars().any(char::is_control) {
            return Err(Invalid::new(
                "invalid_group_name",
                format!("group name must be 1 to {} characters", Self::MAX_CHARS),
            ));
        }
        Ok(Self(n.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_trimmed_and_bounded() {
        assert_eq!(MessageBody::parse("  hi \n").unwrap().as_str(), "hi");
        assert!(MessageBody::parse(" \n\t ").is_err());
        assert!(MessageBody::parse(&"é".repeat(4000)).is_ok());
        assert!(MessageBody::parse(&"é".repeat(4001)).is_err());
    }

    #[test]
    fn client_ids_and_group_names_are_bounded() {
        assert!(ClientId::parse(&"x".repeat(64)).is_ok());
        assert!(ClientId::parse(&"x".repeat(65)).is_err());
        assert!(ClientId::parse("").is_err());
        assert!(GroupName::parse(" team ").is_ok());
        assert!(GroupName::parse(&"g".repeat(101)).is_err());
    }
}
