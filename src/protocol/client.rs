//! Client → server frames. A frame is checked and turned into a [`ClientFrame`] here; the
//! connection then acts on it with one `match`.

use serde::Deserialize;
use serde_json::Value;

use super::ProtocolError;

#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    Ping,
    Pong,
    Subscribe {
        channel: String,
        auth: Option<String>,
        /// Presence member data, exactly as the client sent it (the signature covers these bytes).
        channel_data: Option<String>,
    },
    Unsubscribe {
        channel: String,
    },
    /// `client-*` event to relay to the channel's other subscribers; `data` is JSON text.
    ClientEvent {
        event: String,
        channel: String,
        data: String,
    },
}

#[derive(Deserialize)]
struct RawFrame {
    event: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    data: Option<Value>,
}

#[derive(Deserialize)]
struct SubscribeData {
    channel: String,
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    channel_data: Option<Value>,
}

#[derive(Deserialize)]
struct UnsubscribeData {
    channel: String,
}

fn malformed(what: impl Into<String>) -> ProtocolError {
    ProtocolError::Malformed(what.into())
}

/// `data` as pusher-js sends it (an object), or double-encoded as a JSON string.
fn data_as<T: for<'de> Deserialize<'de>>(data: Option<Value>, event: &str) -> Result<T, ProtocolError> {
    let data = match data {
        Some(Value::String(s)) => serde_json::from_str(&s),
        Some(v) => serde_json::from_value(v),
        None => return Err(malformed(format!("{event} needs data"))),
    };
    data.map_err(|e| malformed(format!("{event}: {e}")))
}

/// Decodes one text frame.
///
/// # Errors
/// [`ProtocolError::Malformed`] for text that is not a Pusher frame or an event this server does
/// not accept from clients; [`ProtocolError::MessageTooLarge`] over 10 KB.
pub fn decode(text: &str) -> Result<ClientFrame, ProtocolError> {
    if text.len() > super::MAX_CLIENT_MESSAGE {
        return Err(ProtocolError::MessageTooLarge);
    }
    let raw: RawFrame = serde_json::from_str(text).map_err(|_| malformed("expected a JSON object with an event"))?;
    match raw.event.as_str() {
        "pusher:ping" => Ok(ClientFrame::Ping),
        "pusher:pong" => Ok(ClientFrame::Pong),
        "pusher:subscribe" => {
            let d: SubscribeData = data_as(raw.data, "pusher:subscribe")?;
            let channel_data = match d.channel_data {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s),
                Some(other) => Some(other.to_string()),
            };
            Ok(ClientFrame::Subscribe {
                channel: d.channel,
                auth: d.auth,
                channel_data,
            })
        }
        "pusher:unsubscribe" => {
            let d: UnsubscribeData = data_as(raw.data, "pusher:unsubscribe")?;
            Ok(ClientFrame::Unsubscribe { channel: d.channel })
        }
        e if e.starts_with("client-") && e.len() > "client-".len() => {
            let channel = raw.channel.ok_or_else(|| malformed("client events need a channel"))?;
            let data = match raw.data {
                Some(Value::String(s)) => s,
                Some(v) => v.to_string(),
                None => "{}".to_owned(),
            };
            Ok(ClientFrame::ClientEvent {
                event: raw.event,
                channel,
                data,
            })
        }
        other => Err(malformed(format!("unsupported event {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_with_object_or_string_data() {
        let obj = r#"{"event":"pusher:subscribe","data":{"channel":"presence-online","auth":"k:s","channel_data":"{\"user_id\":1}"}}"#;
        let s = r#"{"event":"pusher:subscribe","data":"{\"channel\":\"private-a\",\"auth\":\"k:s\"}"}"#;
        assert_eq!(
            decode(obj).unwrap(),
            ClientFrame::Subscribe {
                channel: "presence-online".into(),
                auth: Some("k:s".into()),
                channel_data: Some(r#"{"user_id":1}"#.into())
            }
        );
        assert!(matches!(decode(s).unwrap(), ClientFrame::Subscribe { channel, .. } if channel == "private-a"));
    }

    #[test]
    fn client_events_keep_their_data_as_json_text() {
        let f = r#"{"event":"client-typing","channel":"presence-online","data":{"from":1}}"#;
        assert_eq!(
            decode(f).unwrap(),
            ClientFrame::ClientEvent {
                event: "client-typing".into(),
                channel: "presence-online".into(),
                data: r#"{"from":1}"#.into()
            }
        );
    }

    #[test]
    fn bad_frames_are_refused_with_a_reason() {
        for bad in [
            "",
            "not json",
            "[]",
            r#"{"data":{}}"#,
            r#"{"event":"pusher:subscribe"}"#,
            r#"{"event":"pusher:subscribe","data":{"auth":"x"}}"#,
            r#"{"event":"pusher:signin","data":{}}"#,
            r#"{"event":"client-x"}"#,
            r#"{"event":"client-","channel":"private-a"}"#,
            r#"{"event":"my-event","channel":"a"}"#,
        ] {
            assert!(matches!(decode(bad), Err(ProtocolError::Malformed(_))), "{bad:?}");
        }
        let big = format!(
            r#"{{"event":"client-x","channel":"private-a","data":"{}"}}"#,
            "x".repeat(11_000)
        );
        assert_eq!(decode(&big), Err(ProtocolError::MessageTooLarge));
    }
}
