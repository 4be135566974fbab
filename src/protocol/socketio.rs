//! The Socket.IO packet format (protocol 4 for socket.io-client 2.x over Engine.IO 3, protocol 5
//! for socket.io-client 3/4 over Engine.IO 4) and laravel-echo-server's events on top of it. An
//! Engine.IO message carries one packet: `<type>[<namespace>,][<ack id>][<JSON>]`. Only the
//! default namespace `/` exists here, and no binary packets. No I/O here: Engine.IO itself (the
//! transports, heartbeats, sessions) is the `engineioxide` crate's.
//!
//! From the client: `subscribe {channel, auth: {headers}}`, `unsubscribe {channel}` and
//! `client event {channel, event, data}`. To the client: `[event, channel, data]` for every event
//! on a channel, `presence:subscribed`, `presence:joining`, `presence:leaving` and
//! `subscription_error [channel, status]`.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{MAX_CLIENT_MESSAGE, frames::EventFrame};

/// Headers a client may give in `auth.headers` (laravel-echo sends one or two: `Authorization`,
/// `X-CSRF-TOKEN`); more are refused rather than forwarded.
pub const MAX_AUTH_HEADERS: usize = 16;

/// A packet from the client, checked and decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Packet {
    /// CONNECT to the default namespace (any auth payload of protocol 5 is ignored: laravel-echo
    /// authorises per channel).
    Connect,
    /// CONNECT to a namespace that does not exist here.
    ConnectOther,
    Disconnect,
    /// An EVENT: what it asks for, and the id of the acknowledgement it waits for, if any.
    Event {
        ack: Option<u64>,
        event: ClientEvent,
    },
    /// An ACK of something the server never asked: nothing to do.
    Ack,
}

/// The events laravel-echo emits.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    Subscribe {
        channel: String,
        /// `auth.headers`, as strings, in the order given.
        headers: Vec<(String, String)>,
    },
    Unsubscribe {
        channel: String,
    },
    /// A whisper: `event` is `client-…`, `data` JSON text.
    Whisper {
        channel: String,
        event: String,
        data: String,
    },
    /// Any other event name: ignored, as laravel-echo-server ignores it.
    Other(String),
}

/// Why a packet was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("packet larger than 10 KB")]
    TooLarge,
    #[error("binary packets are not supported")]
    Binary,
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
}

#[derive(Deserialize)]
struct SubscribeArgs {
    channel: String,
    #[serde(default)]
    auth: Option<Auth>,
}

#[derive(Deserialize, Default)]
struct Auth {
    #[serde(default)]
    headers: Option<serde_json::Map<String, Value>>,
}

#[derive(Deserialize)]
struct UnsubscribeArgs {
    channel: String,
}

#[derive(Deserialize)]
struct WhisperArgs {
    channel: String,
    event: String,
    #[serde(default)]
    data: Value,
}

/// Decodes one packet (the text of one Engine.IO message).
///
/// # Errors
/// [`PacketError::TooLarge`] over [`MAX_CLIENT_MESSAGE`]; [`PacketError::Binary`] for binary
/// events; [`PacketError::Malformed`] for anything else that is not a Socket.IO packet or an
/// event laravel-echo sends in the shape it sends it.
pub fn decode(text: &str) -> Result<Packet, PacketError> {
    if text.len() > MAX_CLIENT_MESSAGE {
        return Err(PacketError::TooLarge);
    }
    let kind = match text.bytes().next() {
        Some(b) if b.is_ascii_digit() => char::from(b),
        Some(_) => return Err(PacketError::Malformed("unknown packet type")),
        None => return Err(PacketError::Malformed("empty packet")),
    };
    let mut rest = &text[1..];
    let mut default_namespace = true;
    if rest.starts_with('/') {
        let (nsp, after) = match rest.find(',') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        default_namespace = nsp == "/";
        rest = after;
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let ack = match digits {
        0 => None,
        1..=15 => rest[..digits].parse().ok(),
        _ => return Err(PacketError::Malformed("acknowledgement id too long")),
    };
    let payload = &rest[digits..];
    match kind {
        '0' if default_namespace => Ok(Packet::Connect),
        '0' => Ok(Packet::ConnectOther),
        '1' => Ok(Packet::Disconnect),
        '2' if !default_namespace => Err(PacketError::Malformed("unknown namespace")),
        '2' => Ok(Packet::Event {
            ack,
            event: decode_event(payload)?,
        }),
        '3' => Ok(Packet::Ack),
        '5' | '6' => Err(PacketError::Binary),
        _ => Err(PacketError::Malformed("unknown packet type")),
    }
}

fn decode_event(payload: &str) -> Result<ClientEvent, PacketError> {
    let args: Vec<Value> =
        serde_json::from_str(payload).map_err(|_| PacketError::Malformed("an event is a JSON array"))?;
    let mut args = args.into_iter();
    let Some(Value::String(name)) = args.next() else {
        return Err(PacketError::Malformed("an event starts with its name"));
    };
    let first = args.next().unwrap_or(Value::Null);
    let shape = |_| PacketError::Malformed("event arguments are not in laravel-echo's shape");
    match name.as_str() {
        "subscribe" => {
            let a: SubscribeArgs = serde_json::from_value(first).map_err(shape)?;
            let headers = a.auth.unwrap_or_default().headers.unwrap_or_default();
            if headers.len() > MAX_AUTH_HEADERS {
                return Err(PacketError::Malformed("too many auth headers"));
            }
            let headers = headers
                .into_iter()
                .filter_map(|(k, v)| match v {
                    Value::String(s) => Some((k, s)),
                    Value::Number(n) => Some((k, n.to_string())),
                    _ => None,
                })
                .collect();
            Ok(ClientEvent::Subscribe {
                channel: a.channel,
                headers,
            })
        }
        "unsubscribe" => {
            let a: UnsubscribeArgs = serde_json::from_value(first).map_err(shape)?;
            Ok(ClientEvent::Unsubscribe { channel: a.channel })
        }
        "client event" => {
            let a: WhisperArgs = serde_json::from_value(first).map_err(shape)?;
            Ok(ClientEvent::Whisper {
                channel: a.channel,
                event: a.event,
                data: a.data.to_string(),
            })
        }
        _ => Ok(ClientEvent::Other(name)),
    }
}

/// The answer to CONNECT: protocol 5 names the socket (`{"sid"}`), protocol 4 (Engine.IO 3)
/// sends CONNECT unasked and bare.
pub fn connected(sid: Option<&str>) -> String {
    match sid {
        Some(sid) => format!("0{}", json!({ "sid": sid })),
        None => "0".to_owned(),
    }
}

/// CONNECT_ERROR for a namespace that does not exist.
pub fn connect_error(protocol5: bool) -> String {
    if protocol5 {
        format!("4{}", json!({ "message": "Invalid namespace" }))
    } else {
        "4\"Invalid namespace\"".to_owned()
    }
}

/// An EVENT packet `[event, args…]`.
pub fn event(event: &str, args: &[&Value]) -> String {
    let mut all = vec![Value::from(event)];
    all.extend(args.iter().map(|a| (*a).clone()));
    format!("2{}", Value::Array(all))
}

/// An ACK packet answering the client's acknowledgement `id`.
pub fn ack(id: u64, args: &Value) -> String {
    format!("3{id}{}", Value::Array(vec![args.clone()]))
}

/// `subscription_error [channel, status]`, as laravel-echo-server sends it.
pub fn subscription_error(channel: &str, status: u16) -> String {
    event("subscription_error", &[&Value::from(channel), &Value::from(status)])
}

/// `presence:subscribed [channel, members]`, each member `{user_id, user_info}` (laravel-echo
/// hands the `user_info`s to `here`).
pub fn presence_subscribed(channel: &str, members: &[(String, Value)]) -> String {
    let list: Vec<Value> = members
        .iter()
        .map(|(id, info)| json!({ "user_id": id, "user_info": info }))
        .collect();
    event("presence:subscribed", &[&Value::from(channel), &Value::Array(list)])
}

/// A channel event encoded once, ready to be addressed to any channel: `2[event, channel, data]`
/// with `data` the payload itself (laravel-echo-server sends the decoded object), or the payload
/// as a JSON string when it is not JSON.
pub fn channel_event(event: &str, data_json: &str) -> EventFrame {
    let head = format!("2[{},\"", Value::from(event));
    let data = if serde_json::from_str::<serde::de::IgnoredAny>(data_json).is_ok() {
        data_json.to_owned()
    } else {
        Value::from(data_json).to_string()
    };
    EventFrame::around_channel(head, format!("\",{data}]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_laravel_echo_emits() {
        let sub = r#"2["subscribe",{"channel":"private-orders","auth":{"headers":{"Authorization":"Bearer t","X-Number":5,"X-Obj":{}}}}]"#;
        assert_eq!(
            decode(sub).unwrap(),
            Packet::Event {
                ack: None,
                event: ClientEvent::Subscribe {
                    channel: "private-orders".into(),
                    headers: vec![
                        ("Authorization".into(), "Bearer t".into()),
                        ("X-Number".into(), "5".into())
                    ],
                }
            }
        );
        assert_eq!(
            decode(r#"212["unsubscribe",{"channel":"a","auth":{}}]"#).unwrap(),
            Packet::Event {
                ack: Some(12),
                event: ClientEvent::Unsubscribe { channel: "a".into() }
            }
        );
        assert_eq!(
            decode(r#"2["client event",{"channel":"private-a","event":"client-typing","data":{"x":1}}]"#).unwrap(),
            Packet::Event {
                ack: None,
                event: ClientEvent::Whisper {
                    channel: "private-a".into(),
                    event: "client-typing".into(),
                    data: r#"{"x":1}"#.into()
                }
            }
        );
        assert_eq!(decode("0").unwrap(), Packet::Connect);
        assert_eq!(decode(r#"0{"headers":{}}"#).unwrap(), Packet::Connect);
        assert_eq!(decode("0/admin,").unwrap(), Packet::ConnectOther);
        assert_eq!(decode("1").unwrap(), Packet::Disconnect);
        assert_eq!(
            decode(r#"2["hello",1]"#).unwrap(),
            Packet::Event {
                ack: None,
                event: ClientEvent::Other("hello".into())
            }
        );
    }

    #[test]
    fn refuses_bad_packets_with_a_reason() {
        for bad in [
            "",
            "é",
            "9",
            "2",
            "2{}",
            "2[]",
            "2[1]",
            r#"2["subscribe"]"#,
            r#"2["subscribe",{"auth":{}}]"#,
            r#"2["client event",{"channel":"a"}]"#,
            r#"2/admin,["subscribe",{"channel":"a"}]"#,
            r#"21234567890123456["x"]"#,
        ] {
            assert!(matches!(decode(bad), Err(PacketError::Malformed(_))), "{bad:?}");
        }
        assert_eq!(
            decode(r#"51-["x",{"_placeholder":true,"num":0}]"#),
            Err(PacketError::Binary)
        );
        let big = format!(
            r#"2["client event",{{"channel":"a","event":"client-x","data":"{}"}}]"#,
            "x".repeat(11_000)
        );
        assert_eq!(decode(&big), Err(PacketError::TooLarge));
        let many: serde_json::Map<String, Value> = (0..=MAX_AUTH_HEADERS)
            .map(|i| (format!("h{i}"), Value::from("v")))
            .collect();
        let sub = format!("2{}", json!(["subscribe", {"channel": "a", "auth": {"headers": many}}]));
        assert!(matches!(decode(&sub), Err(PacketError::Malformed(_))));
    }

    #[test]
    fn events_carry_the_payload_itself() {
        let f = channel_event("App\\Events\\Shipped", r#"{"id":7}"#).for_channel("private-orders");
        let v: Value = serde_json::from_str(&f[1..]).unwrap();
        assert_eq!(v, json!(["App\\Events\\Shipped", "private-orders", {"id": 7}]));
        let not_json = channel_event("e", "plain text").for_channel("c");
        assert_eq!(
            serde_json::from_str::<Value>(&not_json[1..]).unwrap(),
            json!(["e", "c", "plain text"])
        );
        assert_eq!(connected(Some("1.2")), r#"0{"sid":"1.2"}"#);
        assert_eq!(
            subscription_error("private-a", 403),
            r#"2["subscription_error","private-a",403]"#
        );
        let members = vec![("1".to_owned(), json!({"name": "a"}))];
        assert_eq!(
            serde_json::from_str::<Value>(&presence_subscribed("presence-x", &members)[1..]).unwrap(),
            json!(["presence:subscribed", "presence-x", [{"user_id": "1", "user_info": {"name": "a"}}]])
        );
        assert_eq!(ack(3, &json!({"status": 200})), r#"33[{"status":200}]"#);
    }
}
