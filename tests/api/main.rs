//! Black-box integration tests: each test starts the real server on port 0 with its own database
//! and talks to it over HTTP and WebSocket. Every test runs on the embedded backend (SQLite,
//! in-process queue and bus), and on MySQL + Redis when `CHATBOX_TEST_MYSQL_URL` and
//! `CHATBOX_TEST_REDIS_URL` are set (CI sets them; their absence fails the run there).

mod fake_oidc;
mod helpers;
mod proxy;
mod pusher;

mod accounts;
mod attachments;
mod broadcast;
mod chaos;
mod chat;
mod chat_features;
mod delivery;
mod echo_inputs;
mod faults;
mod health;
mod http_limits;
mod oidc;
mod pictures;
mod presence;
mod security;
mod socketio;
mod typing;
mod worker;
mod ws_protocol;
