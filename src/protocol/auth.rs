//! Subscription signatures (PROTOCOL.md §1.4): `auth = "{key}:" + hex(HMAC-SHA256(secret, s))`
//! with `s = "{socket_id}:{channel}"`, plus `":{channel_data}"` for presence channels. Presence
//! signatures are checked against the `channel_data` bytes exactly as received.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::config::PusherApp;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, socket_id: &str, channel: &str, channel_data: Option<&str>) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(socket_id.as_bytes());
    mac.update(b":");
    mac.update(channel.as_bytes());
    if let Some(data) = channel_data {
        mac.update(b":");
        mac.update(data.as_bytes());
    }
    mac
}

/// The `auth` value that lets `socket_id` subscribe to `channel`.
pub fn sign(app: &PusherApp, socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
    let digest = mac(app.secret.expose(), socket_id, channel, channel_data)
        .finalize()
        .into_bytes();
    format!("{}:{}", app.key, hex::encode(digest))
}

/// Whether `auth` is this server's signature for the subscription (constant-time comparison).
pub fn verify(app: &PusherApp, socket_id: &str, channel: &str, channel_data: Option<&str>, auth: &str) -> bool {
    let Some((key, signature)) = auth.split_once(':') else {
        return false;
    };
    let Ok(signature) = hex::decode(signature) else {
        return false;
    };
    key == app.key
        && mac(app.secret.expose(), socket_id, channel, channel_data)
            .verify_slice(&signature)
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn app() -> PusherApp {
        PusherApp {
            id: "1".into(),
            key: "278d425bdf160c739803".into(),
            secret: Secret::new("7ad3773142a6692b25b8"),
        }
    }

    #[test]
    fn matches_the_documented_private_channel_vector() {
        assert_eq!(
            sign(&app(), "1234.1234", "private-foobar", None),
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
    }

    #[test]
    fn verify_accepts_own_signatures_only() {
        let data = r#"{"user_id":1,"user_info":{"id":1,"name":"a"}}"#;
        let auth = sign(&app(), "1.2", "presence-online", Some(data));
        assert!(verify(&app(), "1.2", "presence-online", Some(data), &auth));
        assert!(
            !verify(&app(), "1.3", "presence-online", Some(data), &auth),
            "other socket"
        );
        assert!(
            !verify(&app(), "1.2", "presence-other", Some(data), &auth),
            "other channel"
        );
        let forged = data.replace("\"a\"", "\"b\"");
        assert!(
            !verify(&app(), "1.2", "presence-online", Some(&forged), &auth),
            "edited data"
        );
        assert!(!verify(&app(), "1.2", "presence-online", Some(data), "nokey"));
        assert!(!verify(
            &app(),
            "1.2",
            "presence-online",
            Some(data),
            &auth.replace("278d", "0000")
        ));
    }
}
