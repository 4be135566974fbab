//! `chatbox serve --echo-config laravel-echo-server.json`: reads the settings of a
//! laravel-echo-server configuration file that chatbox has an equivalent for, so a team moving
//! from laravel-echo-server points chatbox at the file it already has:
//!
//! | file | setting |
//! |---|---|
//! | `authHost`, `authEndpoint` | `AUTH_HOST`, `AUTH_ENDPOINT` |
//! | `host`, `port` | `BIND` (`host` null or empty: every address, as laravel-echo-server) |
//! | `databaseConfig.redis` (`host`, `port`, `password`, `db`) | `REDIS_URL` |
//! | `databaseConfig.redis.keyPrefix` | `REDIS_BROADCAST_PREFIX` (unless `subscribers.redis` is false) |
//! | `apiOriginAllow.allowOrigin` | `ALLOWED_ORIGINS` |
//! | `clients` (`appId`, `key`) | `ECHO_CLIENTS` |
//!
//! A setting given on the command line or in the environment (`.env` included) wins over the
//! file. Fields chatbox has no use for are named in one warning line at start-up.

use std::path::Path;

use serde_json::{Map, Value};

use crate::config::{ConfigError, Settings};

/// The settings a laravel-echo-server file gives, by the name of the [`Settings`] field each sets.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EchoFile {
    pub settings: Vec<(&'static str, String)>,
    /// Fields present in the file that chatbox does not read (`devMode`, `sslCertPath`, …).
    pub unused: Vec<String>,
}

/// Largest file read: laravel-echo-server's own files are about 1 KB.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

fn bad(problem: impl Into<String>) -> ConfigError {
    ConfigError {
        name: "ECHO_CONFIG",
        problem: problem.into(),
    }
}

/// Reads and interprets the file at `path`.
///
/// # Errors
/// The file cannot be read, is not JSON, or a field it uses has the wrong type.
pub fn read(path: &Path) -> Result<EchoFile, ConfigError> {
    let size = std::fs::metadata(path)
        .map_err(|e| bad(format!("{}: {e}", path.display())))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(bad(format!("{}: larger than 1 MiB", path.display())));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
    parse(&text).map_err(|problem| bad(format!("{}: {problem}", path.display())))
}

/// A string or number field as text; `None` when absent, null or empty.
fn text(object: &Map<String, Value>, field: &str) -> Result<Option<String>, String> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(format!("{field} must be a string or a number")),
    }
}

fn object<'a>(parent: &'a Map<String, Value>, field: &str) -> Result<Option<&'a Map<String, Value>>, String> {
    match parent.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(format!("{field} must be an object")),
    }
}

/// Interprets the text of a laravel-echo-server file.
///
/// # Errors
/// Not JSON, or a field that is read has the wrong type (the message names it).
pub fn parse(text_: &str) -> Result<EchoFile, String> {
    let root: Value = serde_json::from_str(text_).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(root) = root else {
        return Err("expected a JSON object".into());
    };
    let mut out = EchoFile::default();
    let mut used = |setting: &'static str, value: Option<String>| {
        if let Some(v) = value {
            out.settings.push((setting, v));
        }
    };
    used("auth_host", text(&root, "authHost")?);
    used("auth_endpoint", text(&root, "authEndpoint")?);
    let (host, port) = (text(&root, "host")?, text(&root, "port")?);
    if host.is_some() || port.is_some() {
        let host = host.unwrap_or_else(|| "0.0.0.0".into());
        let host = if host.contains(':') { format!("[{host}]") } else { host };
        used(
            "bind",
            Some(format!("{host}:{}", port.unwrap_or_else(|| "6001".into()))),
        );
    }
    let relay = object(&root, "subscribers")?.and_then(|s| s.get("redis")) != Some(&Value::Bool(false));
    let database = object(&root, "databaseConfig")?;
    if let Some(redis) = database.map(|d| object(d, "redis")).transpose()?.flatten() {
        used("redis_url", Some(redis_url(redis)?));
        if relay {
            used(
                "redis_broadcast_prefix",
                Some(text(redis, "keyPrefix")?.unwrap_or_default()),
            );
        }
    }
    if let Some(cors) = object(&root, "apiOriginAllow")? {
        used("allowed_origins", text(cors, "allowOrigin")?);
    }
    if let Some(clients) = root.get("clients") {
        let Value::Array(list) = clients else {
            return Err("clients must be a list".into());
        };
        let mut pairs = Vec::new();
        for c in list {
            let c = c.as_object().ok_or("each of clients must be {appId, key}")?;
            match (text(c, "appId")?, text(c, "key")?) {
                (Some(id), Some(key)) => pairs.push(format!("{id}:{key}")),
                _ => return Err("each of clients must have an appId and a key".into()),
            }
        }
        used("echo_clients", (!pairs.is_empty()).then(|| pairs.join(",")));
    }
    out.unused = unused(&root);
    Ok(out)
}

/// `redis://[:password@]host:port[/db]` from laravel-echo-server's (ioredis) options, whose
/// defaults are 127.0.0.1:6379.
fn redis_url(redis: &Map<String, Value>) -> Result<String, String> {
    let host = text(redis, "host")?.unwrap_or_else(|| "127.0.0.1".into());
    let port = text(redis, "port")?.unwrap_or_else(|| "6379".into());
    let auth = match text(redis, "password")? {
        Some(p) => format!(":{}@", percent_encode(&p)),
        None => String::new(),
    };
    let db = text(redis, "db")?.map(|d| format!("/{d}")).unwrap_or_default();
    Ok(format!("redis://{auth}{host}:{port}{db}"))
}

/// Escapes everything but unreserved URL characters.
fn percent_encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The fields present that chatbox does not read, by their path in the file.
fn unused(root: &Map<String, Value>) -> Vec<String> {
    const READ: &[&str] = &["authHost", "authEndpoint", "host", "port", "clients"];
    const REDIS_READ: &[&str] = &["host", "port", "password", "db", "keyPrefix"];
    let mut out = Vec::new();
    for (field, value) in root {
        match (field.as_str(), value) {
            (f, _) if READ.contains(&f) => {}
            ("databaseConfig", Value::Object(d)) => {
                for (sub, v) in d {
                    match (sub.as_str(), v) {
                        ("redis", Value::Object(r)) => out.extend(
                            r.keys()
                                .filter(|k| !REDIS_READ.contains(&k.as_str()))
                                .map(|k| format!("databaseConfig.redis.{k}")),
                        ),
                        _ => out.push(format!("databaseConfig.{sub}")),
                    }
                }
            }
            ("apiOriginAllow", Value::Object(a)) => out.extend(
                a.keys()
                    .filter(|k| k.as_str() != "allowOrigin")
                    .map(|k| format!("apiOriginAllow.{k}")),
            ),
            ("subscribers", Value::Object(s)) => {
                out.extend(
                    s.keys()
                        .filter(|k| k.as_str() != "redis")
                        .map(|k| format!("subscribers.{k}")),
                );
            }
            _ => out.push(field.clone()),
        }
    }
    out
}

impl EchoFile {
    /// Puts the file's settings into `s` wherever `explicit(field)` says the setting was not
    /// given on the command line or in the environment; logs the unused fields once (call after
    /// logging is set up) via [`EchoFile::warning`].
    pub fn apply(&self, s: &mut Settings, explicit: impl Fn(&str) -> bool) {
        for (field, value) in &self.settings {
            if explicit(field) {
                continue;
            }
            let v = value.clone();
            match *field {
                "auth_host" => s.auth_host = Some(v),
                "auth_endpoint" => s.auth_endpoint = v,
                "bind" => s.bind = v,
                "redis_url" => s.redis_url = Some(v),
                "redis_broadcast_prefix" => s.redis_broadcast_prefix = Some(v),
                "allowed_origins" => s.allowed_origins = v,
                "echo_clients" => s.echo_clients = v,
                other => unreachable!("the file sets no {other}"),
            }
        }
    }

    /// The one warning line naming the fields chatbox does not use; `None` when there are none.
    pub fn warning(&self) -> Option<String> {
        (!self.unused.is_empty()).then(|| {
            format!(
                "laravel-echo-server.json: chatbox does not use {} (see README § Moving from laravel-echo-server)",
                self.unused.join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file `laravel-echo-server init` writes (1.6.x), with Redis and a client filled in.
    const INIT: &str = r#"{
	"authHost": "http://localhost",
	"authEndpoint": "/broadcasting/auth",
	"clients": [
		{
			"appId": "5c2d4a4f0bbd3c0a",
			"key": "7b2f1c9a8e3d4b5f6a7c8d9e0f1a2b3c"
		}
	],
	"database": "redis",
	"databaseConfig": {
		"redis": {
			"host": "10.0.0.5",
			"port": "6380",
			"password": "p@ss word",
			"db": 2,
			"keyPrefix": "laravel_database_"
		},
		"sqlite": {
			"databasePath": "/database/laravel-echo-server.sqlite"
		}
	},
	"devMode": true,
	"host": null,
	"port": "6001",
	"protocol": "http",
	"socketio": {},
	"secureOptions": 67108864,
	"sslCertPath": "",
	"sslKeyPath": "",
	"sslCertChainPath": "",
	"sslPassphrase": "",
	"subscribers": {
		"http": true,
		"redis": true
	},
	"apiOriginAllow": {
		"allowCors": true,
		"allowOrigin": "http://localhost:80",
		"allowMethods": "GET, POST",
		"allowHeaders": "Origin, Content-Type, X-Auth-Token, X-Requested-With, Accept, Authorization, X-CSRF-TOKEN, X-Socket-Id"
	}
}"#;

    fn setting<'a>(f: &'a EchoFile, name: &str) -> Option<&'a str> {
        f.settings.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn reads_what_chatbox_uses_from_an_init_file() {
        let f = parse(INIT).unwrap();
        assert_eq!(setting(&f, "auth_host"), Some("http://localhost"));
        assert_eq!(setting(&f, "auth_endpoint"), Some("/broadcasting/auth"));
        assert_eq!(setting(&f, "bind"), Some("0.0.0.0:6001"), "host null: every address");
        assert_eq!(setting(&f, "redis_url"), Some("redis://:p%40ss%20word@10.0.0.5:6380/2"));
        assert_eq!(setting(&f, "redis_broadcast_prefix"), Some("laravel_database_"));
        assert_eq!(setting(&f, "allowed_origins"), Some("http://localhost:80"));
        assert_eq!(
            setting(&f, "echo_clients"),
            Some("5c2d4a4f0bbd3c0a:7b2f1c9a8e3d4b5f6a7c8d9e0f1a2b3c")
        );
        let warning = f.warning().unwrap();
        for field in [
            "devMode",
            "protocol",
            "sslCertPath",
            "socketio",
            "databaseConfig.sqlite",
            "database",
            "apiOriginAllow.allowCors",
            "subscribers.http",
        ] {
            assert!(warning.contains(field), "{field} in {warning}");
        }
        for read in ["authHost", "clients", "keyPrefix", "allowOrigin,"] {
            assert!(!warning.contains(read), "{read} is used: {warning}");
        }
    }

    #[test]
    fn an_empty_redis_section_is_iorediss_defaults_and_subscribers_can_turn_the_relay_off() {
        let f = parse(r#"{"databaseConfig": {"redis": {}}, "port": 6001}"#).unwrap();
        assert_eq!(setting(&f, "redis_url"), Some("redis://127.0.0.1:6379"));
        assert_eq!(
            setting(&f, "redis_broadcast_prefix"),
            Some(""),
            "no keyPrefix: every channel"
        );
        assert_eq!(setting(&f, "bind"), Some("0.0.0.0:6001"));
        assert_eq!(f.warning(), None);
        let off = parse(r#"{"databaseConfig": {"redis": {}}, "subscribers": {"redis": false}}"#).unwrap();
        assert_eq!(setting(&off, "redis_broadcast_prefix"), None);
        assert!(setting(&off, "redis_url").is_some());
    }

    #[test]
    fn wrong_types_are_named() {
        assert!(parse("[]").is_err());
        assert!(parse("{").unwrap_err().starts_with("not JSON"));
        assert!(parse(r#"{"clients": {}}"#).unwrap_err().contains("clients"));
        assert!(parse(r#"{"clients": [{"appId": "a"}]}"#).unwrap_err().contains("key"));
        assert!(parse(r#"{"authHost": true}"#).unwrap_err().contains("authHost"));
        assert!(
            parse(r#"{"databaseConfig": []}"#)
                .unwrap_err()
                .contains("databaseConfig")
        );
    }

    #[test]
    fn explicit_settings_win_over_the_file() {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            s: Settings,
        }
        let mut s = T::try_parse_from(["chatbox", "--bind", "127.0.0.1:9000"]).unwrap().s;
        let f = parse(INIT).unwrap();
        f.apply(&mut s, |field| field == "bind");
        assert_eq!(s.bind, "127.0.0.1:9000");
        assert_eq!(s.auth_host.as_deref(), Some("http://localhost"));
        assert_eq!(s.redis_broadcast_prefix.as_deref(), Some("laravel_database_"));
        assert!(s.echo_clients.starts_with("5c2d4a4f0bbd3c0a:"));
    }
}
