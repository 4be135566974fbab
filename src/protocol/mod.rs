//! The Pusher Channels protocol v7 wire format (PROTOCOL.md): frames from clients decoded into
//! [`ClientFrame`], frames to clients encoded by [`frames`], errors and close codes in
//! [`ProtocolError`], subscription signatures in [`auth`]. No I/O here.

pub mod auth;
mod client;
pub mod frames;
mod socket_id;
pub mod socketio;
pub mod wire;

pub use client::{ClientFrame, decode};
pub use socket_id::SocketId;

/// Largest text frame a client may send (Pusher's 10 KB message limit).
pub const MAX_CLIENT_MESSAGE: usize = 10 * 1024;
/// Largest `data` of a client event: whispers ("typing", cursor positions) are tiny, and every
/// byte is copied to every member of the channel.
pub const MAX_CLIENT_EVENT_DATA: usize = 2 * 1024;

/// Everything that makes the server refuse a frame or close a connection. Each maps to exactly
/// one Pusher code and says whether the connection closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("Application does not exist")]
    AppNotFound,
    #[error("Unsupported protocol version")]
    UnsupportedProtocol,
    #[error("Origin not allowed")]
    OriginNotAllowed,
    #[error("Client cannot keep up with its messages")]
    SlowClient,
    #[error("Server is shutting down, reconnect")]
    ShuttingDown,
    #[error("Pong reply not received")]
    PongTimeout,
    #[error("Message larger than 10 KB rejected")]
    MessageTooLarge,
    #[error("Binary frames are not supported")]
    BinaryFrame,
    #[error("Malformed message: {0}")]
    Malformed(String),
    #[error("Client event rate limit exceeded (10 per second)")]
    RateLimited,
    #[error("Too many messages: at most 100 per second per connection")]
    Flooding,
    #[error("Client events are only allowed on private and presence channels the client is subscribed to")]
    ClientEventRefused,
    #[error("Client event data larger than 2 KB rejected")]
    ClientEventTooLarge,
    #[error("Signed out: the credentials this connection was authorised with were revoked")]
    SignedOut,
}

/// What a client should do after being closed with a code (PROTOCOL.md §1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconnect {
    /// 4000–4099: do not reconnect unchanged.
    Never,
    /// 4100–4199: reconnect after a back-off.
    BackOff,
    /// 4200–4299: reconnect now.
    Now,
    /// 4300–4399: the message was refused; the connection stays.
    NotClosed,
}

impl ProtocolError {
    /// The Pusher code and the client's reconnect class.
    pub fn code(&self) -> (u16, Reconnect) {
        match self {
            Self::AppNotFound => (4001, Reconnect::Never),
            Self::UnsupportedProtocol => (4007, Reconnect::Never),
            Self::OriginNotAllowed => (4009, Reconnect::Never),
            Self::SlowClient => (4100, Reconnect::BackOff),
            Self::ShuttingDown => (4200, Reconnect::Now),
            Self::PongTimeout => (4201, Reconnect::Now),
            Self::MessageTooLarge => (4301, Reconnect::NotClosed),
            Self::BinaryFrame => (4301, Reconnect::NotClosed),
            Self::Malformed(_) => (4301, Reconnect::NotClosed),
            Self::RateLimited => (4301, Reconnect::NotClosed),
            Self::Flooding => (4301, Reconnect::NotClosed),
            Self::ClientEventRefused => (4301, Reconnect::NotClosed),
            Self::ClientEventTooLarge => (4301, Reconnect::NotClosed),
            Self::SignedOut => (4009, Reconnect::Never),
        }
    }

    /// Whether the server closes the connection after sending this error.
    pub fn closes(&self) -> bool {
        self.code().1 != Reconnect::NotClosed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_fall_in_their_reconnect_ranges() {
        for e in [
            ProtocolError::AppNotFound,
            ProtocolError::UnsupportedProtocol,
            ProtocolError::OriginNotAllowed,
            ProtocolError::SlowClient,
            ProtocolError::ShuttingDown,
            ProtocolError::PongTimeout,
            ProtocolError::MessageTooLarge,
            ProtocolError::BinaryFrame,
            ProtocolError::Malformed("x".into()),
            ProtocolError::RateLimited,
            ProtocolError::Flooding,
            ProtocolError::ClientEventRefused,
            ProtocolError::ClientEventTooLarge,
            ProtocolError::SignedOut,
        ] {
            let (code, class) = e.code();
            let expected = match code {
                4000..=4099 => Reconnect::Never,
                4100..=4199 => Reconnect::BackOff,
                4200..=4299 => Reconnect::Now,
                _ => Reconnect::NotClosed,
            };
            assert_eq!(class, expected, "{e:?}");
        }
        assert_eq!(
            ProtocolError::ShuttingDown.code().0,
            4200,
            "shutdown must let clients reconnect"
        );
    }
}
