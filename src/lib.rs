//! chatbox: a real-time chat platform and Pusher-protocol broadcast server in one binary.
//!
//! The data path, one module per step:
//!
//! ```text
//! HTTP (http/) ── validate, authorise ──> store/ (message + outbox row, one transaction)
//!                                            │
//!                                 queue/ (FIFO broadcast jobs: Redis list | in-process)
//!                                            │
//!                                 worker (job -> events on private per-user channels)
//!                                            │
//!                                 bus/ (every node: Redis pub/sub | in-process)
//!                                            │
//!                     ws/ hub (channel -> local sockets) ──> Pusher protocol v7 clients
//! ```
//!
//! The database is the source of truth; the queue and the bus only make delivery fast.

pub mod app;
pub mod bench;
pub mod broadcast;
pub mod bus;
pub mod config;
pub mod domain;
pub mod echo_config;
pub mod error;
pub mod files;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod oidc;
pub mod presence;
pub mod protocol;
pub mod queue;
pub mod shutdown;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod worker;
pub mod ws;
