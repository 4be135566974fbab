//! Black-box integration tests: each test starts the real server on port 0 with its own database
//! and talks to it over HTTP (and WebSocket). Every storage test runs on SQLite, and on MySQL when
//! `CHATBOX_TEST_MYSQL_URL` is set (CI sets it; a missing MySQL fails the run there).

mod helpers;

mod accounts;
mod health;
