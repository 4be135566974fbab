//! `chatbox bench`: a load tool that speaks the Pusher protocol itself (and, for `idle` and
//! `fanout`, laravel-echo's socket.io protocol), for measuring a running server (chatbox, any
//! Pusher-protocol peer, or laravel-echo-server) from outside. Results are printed as a table a
//! person reads, or as JSON with `--json`; progress goes to stderr while it runs.

mod backlog;
mod client;
mod connect;
mod e2e;
mod fanout;
mod fanout_all;
mod idle;
mod longpoll;
mod presence;
mod socketio;
mod stats;

use clap::{Args, Subcommand};

pub use stats::Summary;

#[derive(Debug, Subcommand)]
pub enum Workload {
    /// HTTP POST of a one-to-one message → event at the recipient's socket, at a steady rate.
    E2e(e2e::E2eArgs),
    /// A user offline for M messages signs in: time until the last one arrives.
    Backlog(backlog::BacklogArgs),
    /// N waiting long polls woken by one message: wake-up latency.
    Longpoll(longpoll::LongpollArgs),
    /// N idle connections on 2 private channels + presence: server memory per connection.
    Idle(idle::IdleArgs),
    /// One channel × N subscribers, events triggered through the Pusher HTTP API: deliveries per
    /// second, latency, losses.
    Fanout(fanout::FanoutArgs),
    /// Messages to "All" with N users online: deliveries per second and latency.
    FanoutAll(fanout_all::FanoutArgs),
    /// N users join `presence-online` at a given rate: time until every member list is complete,
    /// frames delivered, server memory per connection.
    Presence(presence::PresenceArgs),
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub workload: Workload,
    /// Print the result as JSON on stdout instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Runs a workload and prints its report.
///
/// # Errors
/// The server could not be reached or answered unexpectedly.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let report = match args.workload {
        Workload::E2e(a) => e2e::run(a).await?,
        Workload::Idle(a) => idle::run(a).await?,
        Workload::Backlog(a) => backlog::run(a).await?,
        Workload::Longpoll(a) => longpoll::run(a).await?,
        Workload::Fanout(a) => fanout::run(a).await?,
        Workload::FanoutAll(a) => fanout_all::run(a).await?,
        Workload::Presence(a) => presence::run(a).await?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.json)?);
    } else {
        println!("{}", report.table);
    }
    Ok(())
}

/// What a workload measured.
pub struct Report {
    pub table: String,
    pub json: serde_json::Value,
}
