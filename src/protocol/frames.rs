//! Server → client frames. `data` is always a JSON-encoded string (PROTOCOL.md §1.1). Channel
//! events are encoded once per event: [`EventFrame`] keeps the encoded head and tail so a frame for
//! one more channel costs a concatenation, never a second serialisation of the payload.

use serde_json::{Value, json};

use super::{ProtocolError, SocketId};

/// A user's first socket on a presence channel anywhere: `{user_id, user_info}`.
pub const MEMBER_ADDED: &str = "pusher_internal:member_added";
/// A user's last socket on a presence channel closed: `{user_id, user_info}` (Pusher clients
/// read the id; Socket.IO clients hand the `user_info` to laravel-echo's `leaving`).
pub const MEMBER_REMOVED: &str = "pusher_internal:member_removed";

/// Text of a frame with `data` double-encoded.
fn frame(event: &str, channel: Option<&str>, data: &Value) -> String {
    let data = data.to_string();
    match channel {
        Some(c) => json!({ "event": event, "channel": c, "data": data }).to_string(),
        None => json!({ "event": event, "data": data }).to_string(),
    }
}

pub fn connection_established(socket_id: SocketId, activity_timeout_secs: u64) -> String {
    frame(
        "pusher:connection_established",
        None,
        &json!({ "socket_id": socket_id.to_string(), "activity_timeout": activity_timeout_secs }),
    )
}

pub fn error(e: &ProtocolError) -> String {
    frame(
        "pusher:error",
        None,
        &json!({ "code": e.code().0, "message": e.to_string() }),
    )
}

pub fn ping() -> String {
    frame("pusher:ping", None, &json!({}))
}

pub fn pong() -> String {
    frame("pusher:pong", None, &json!({}))
}

/// Members of a presence channel: `(user_id, user_info)` pairs, each user once.
pub fn subscription_succeeded(channel: &str, presence: Option<&[(String, Value)]>) -> String {
    let data = match presence {
        None => json!({}),
        Some(members) => {
            let ids: Vec<&str> = members.iter().map(|(id, _)| id.as_str()).collect();
            let hash: serde_json::Map<String, Value> =
                members.iter().map(|(id, info)| (id.clone(), info.clone())).collect();
            json!({ "presence": { "ids": ids, "hash": hash, "count": members.len() } })
        }
    };
    frame("pusher_internal:subscription_succeeded", Some(channel), &data)
}

/// A presence `subscription_succeeded` over the member limit: the true `count`, and only the
/// subscriber itself in `ids`/`hash` (pusher-js finds `me` there; the rest are paged over HTTP).
pub fn subscription_counted(channel: &str, me: &str, info: &Value, count: usize) -> String {
    let data = json!({ "presence": { "ids": [me], "hash": { me: info }, "count": count } });
    frame("pusher_internal:subscription_succeeded", Some(channel), &data)
}

/// Carries `channel` so pusher-js routes it to the channel and laravel-echo's `.error()` fires.
pub fn subscription_error(channel: &str, status: u16, message: &str) -> String {
    frame(
        "pusher:subscription_error",
        Some(channel),
        &json!({ "type": "AuthError", "error": message, "status": status }),
    )
}

/// A channel event encoded once, ready to be addressed to any channel: the text before the
/// channel name and the text after it (a Pusher frame here, a socket.io packet in
/// [`super::socketio::channel_event`]).
#[derive(Debug, Clone)]
pub struct EventFrame {
    head: String,
    tail: String,
}

impl EventFrame {
    /// The frame `head` + channel + `tail`.
    pub(super) fn around_channel(head: String, tail: String) -> Self {
        Self { head, tail }
    }

    /// `data_json` is the event payload as JSON text; it is sent as a JSON string. `user_id` is
    /// set on client events in presence channels.
    pub fn new(event: &str, data_json: &str, user_id: Option<&str>) -> Self {
        let head = format!("{{\"event\":{},\"channel\":\"", Value::from(event));
        let mut tail = format!("\",\"data\":{}", Value::from(data_json));
        if let Some(u) = user_id {
            tail.push_str(&format!(",\"user_id\":{}", Value::from(u)));
        }
        tail.push('}');
        Self { head, tail }
    }

    /// The frame on `channel` (a validated channel name: nothing in it needs escaping).
    pub fn for_channel(&self, channel: &str) -> String {
        let mut s = String::with_capacity(self.head.len() + channel.len() + self.tail.len());
        s.push_str(&self.head);
        s.push_str(channel);
        s.push_str(&self.tail);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_frame_matches_a_plain_encoding() {
        let f = EventFrame::new(
            "App\\Events\\GroupMessage",
            r#"{"message":{"body":"hi \"you\""}}"#,
            None,
        );
        let text = f.for_channel("private-group.message.7");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["event"], "App\\Events\\GroupMessage");
        assert_eq!(v["channel"], "private-group.message.7");
        let data: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
        assert_eq!(data["message"]["body"], "hi \"you\"");
        let with_user = EventFrame::new("client-typing", "{}", Some("5")).for_channel("presence-online");
        assert_eq!(serde_json::from_str::<Value>(&with_user).unwrap()["user_id"], "5");
    }

    #[test]
    fn handshake_data_is_a_string_with_socket_id_and_timeout() {
        let v: Value = serde_json::from_str(&connection_established(SocketId::parse("1.2").unwrap(), 120)).unwrap();
        let data: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
        assert_eq!(data["socket_id"], "1.2");
        assert_eq!(data["activity_timeout"], 120);
    }

    #[test]
    fn presence_success_lists_ids_hash_and_count() {
        let members = vec![("1".to_owned(), json!({"id": 1, "name": "a"}))];
        let v: Value = serde_json::from_str(&subscription_succeeded("presence-online", Some(&members))).unwrap();
        let data: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
        assert_eq!(data["presence"]["ids"], json!(["1"]));
        assert_eq!(data["presence"]["hash"]["1"]["name"], "a");
        assert_eq!(data["presence"]["count"], 1);
    }

    #[test]
    fn counted_success_lists_only_me_with_the_true_count() {
        let v: Value = serde_json::from_str(&subscription_counted(
            "presence-online",
            "7",
            &json!({"name": "g"}),
            5000,
        ))
        .unwrap();
        let data: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
        assert_eq!(data["presence"]["ids"], json!(["7"]));
        assert_eq!(data["presence"]["hash"]["7"]["name"], "g");
        assert_eq!(data["presence"]["count"], 5000);
    }
}
