//! `idle`: N connections, each subscribed to its two private channels and `presence-online`, held
//! open; the server's resident memory before and after gives bytes per idle connection. With
//! `--protocol socketio` the connections are socket.io ones, each on two public channels of its
//! own (no presence), so the same figure can be taken of laravel-echo-server.
//! Subscriptions are signed here with the app secret (as a server-side auth endpoint would), so
//! the workload runs against any Pusher-protocol server. Connections are spread over 127.0.0.x
//! source addresses (a per-address connection cap, and ephemeral ports, are per address).

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use clap::Args;
use serde_json::json;

use super::{
    Report,
    connect::{Protocol, ProtocolArgs, open_many, proc_status},
};
use crate::config::{PusherApp, Secret};

#[derive(Debug, Args)]
pub struct IdleArgs {
    /// WebSocket endpoint(s) host:port of the server(s) under test, comma-separated (several
    /// nodes: connections are spread over them).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:8080")]
    pub server: Vec<SocketAddr>,
    #[arg(long, default_value = "chatbox-key")]
    pub app_key: String,
    /// The server's app secret (its `PUSHER_APP_SECRET`), to sign as the server would.
    #[arg(long, env = "PUSHER_APP_SECRET", hide_env_values = true)]
    pub app_secret: String,
    /// Process id of each server, in the order of `--server`, for resident memory (VmRSS).
    #[arg(long, value_delimiter = ',', required = true)]
    pub pid: Vec<u32>,
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Load-tool processes to spread the connections over (a process here may open at most
    /// 20,000 files). At least one per server.
    #[arg(long, default_value_t = 1)]
    pub processes: usize,
    /// Source addresses 127.0.0.1 … 127.0.0.N to spread the connections over.
    #[arg(long, default_value_t = 16)]
    pub sources: u8,
    /// First user id used in channel names.
    #[arg(long, default_value_t = 1)]
    pub first_user: usize,
    /// Subscribe only the two private channels, not `presence-online` (every join on a presence
    /// channel is announced to every member: its cost grows with the square of the members).
    #[arg(long)]
    pub no_presence: bool,
    #[command(flatten)]
    pub protocol: ProtocolArgs,
    /// Seconds to keep the connections open after the measurement.
    #[arg(long, default_value_t = 0)]
    pub hold_secs: u64,
    /// Run as one of the tool's own helper processes: open the connections, print a JSON line,
    /// hold them until standard input closes.
    #[arg(long, hide = true)]
    pub child: bool,
}

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> anyhow::Result<u64> {
    Ok(proc_status(pid, "VmRSS:")? * 1024)
}

/// What one process opened.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
struct Tally {
    opened: usize,
    failed: usize,
    seconds: f64,
}

/// Opens `count` connections to `server` for users `first_user…`, each then held by a task that
/// answers pings; returns the tasks and the tally once every attempt has finished.
async fn establish(
    server: SocketAddr,
    app: Arc<PusherApp>,
    protocol: &ProtocolArgs,
    count: usize,
    first_user: usize,
    sources: u8,
    presence: bool,
) -> anyhow::Result<(Vec<tokio::task::JoinHandle<()>>, Tally)> {
    let socketio = protocol.protocol == Protocol::Socketio;
    let opened = open_many(server, protocol.dialect(&app), count, sources, |i| {
        if socketio {
            public_subscriptions(first_user + i)
        } else {
            user_subscriptions(first_user + i, presence)
        }
    })
    .await?;
    let tally = Tally {
        opened: opened.sockets.len(),
        failed: opened.failed,
        seconds: opened.seconds,
    };
    let held = opened
        .sockets
        .into_iter()
        .map(|mut conn| {
            tokio::spawn(async move {
                // Stay connected: keep-alives are answered (or sent) until the run ends.
                while conn.next_event().await.is_some() {}
            })
        })
        .collect();
    Ok((held, tally))
}

/// A helper process of the tool holding its share of the connections.
struct Child {
    process: tokio::process::Child,
    server: usize,
}

pub async fn run(args: IdleArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(
        args.pid.len() == args.server.len(),
        "give one --pid per --server ({} servers, {} pids)",
        args.server.len(),
        args.pid.len()
    );
    let app = Arc::new(PusherApp {
        id: "bench".into(),
        key: args.app_key.clone(),
        secret: Secret::new(args.app_secret.clone()),
    });
    let presence = !args.no_presence && args.protocol.protocol == Protocol::Pusher;
    // All the connections from this process, to the first server.
    let here = || {
        establish(
            args.server[0],
            app.clone(),
            &args.protocol,
            args.connections,
            args.first_user,
            args.sources,
            presence,
        )
    };
    if args.child {
        let (held, tally) = here().await?;
        println!("{}", serde_json::to_string(&tally)?);
        // Hold until the parent closes standard input.
        let mut rest = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut rest).await;
        held.iter().for_each(|h| h.abort());
        // The parent has read its line and stopped listening: nothing more to print.
        std::process::exit(0);
    }
    let before: Vec<u64> = args.pid.iter().map(|p| rss(*p)).collect::<anyhow::Result<_>>()?;
    let processes = args.processes.max(args.server.len());
    let started = Instant::now();
    let mut per_server = vec![Tally::default(); args.server.len()];
    let mut local = Vec::new();
    let mut children = Vec::new();
    if processes == 1 {
        let (held, tally) = here().await?;
        local = held;
        per_server[0] = tally;
    } else {
        let exe = std::env::current_exe()?;
        for p in 0..processes {
            let count = args.connections / processes + usize::from(p < args.connections % processes);
            let first_user = args.first_user + p * args.connections.div_ceil(processes);
            let server = p % args.server.len();
            let mut command = tokio::process::Command::new(&exe);
            command
                .args(["bench", "idle", "--child", "--server"])
                .arg(args.server[server].to_string())
                .args([
                    "--pid",
                    "0",
                    "--app-key",
                    &args.app_key,
                    "--app-secret",
                    &args.app_secret,
                ])
                .args([
                    "--connections",
                    &count.to_string(),
                    "--first-user",
                    &first_user.to_string(),
                ])
                .args(["--sources", &args.sources.to_string()])
                .args(args.protocol.to_args())
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .kill_on_drop(true);
            if args.no_presence {
                command.arg("--no-presence");
            }
            children.push(Child {
                process: command.spawn().context("starting a load-tool process")?,
                server,
            });
        }
        for child in &mut children {
            let stdout = child.process.stdout.take().context("child stdout")?;
            let mut line = String::new();
            tokio::io::AsyncBufReadExt::read_line(&mut tokio::io::BufReader::new(stdout), &mut line).await?;
            let tally: Tally = serde_json::from_str(line.trim())
                .with_context(|| format!("a load-tool process ended early: {line:?}"))?;
            let s = &mut per_server[child.server];
            s.opened += tally.opened;
            s.failed += tally.failed;
            s.seconds = s.seconds.max(tally.seconds);
        }
    }
    let establish_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await; // let the servers settle
    let after: Vec<u64> = args.pid.iter().map(|p| rss(*p)).collect::<anyhow::Result<_>>()?;
    if args.hold_secs > 0 {
        tokio::time::sleep(Duration::from_secs(args.hold_secs)).await;
    }
    local.iter().for_each(|h| h.abort());
    for mut child in children {
        drop(child.process.stdin.take());
        let _ = child.process.wait().await;
    }
    let open: usize = per_server.iter().map(|s| s.opened).sum();
    let failures: usize = per_server.iter().map(|s| s.failed).sum();
    let grown: u64 = after.iter().zip(&before).map(|(a, b)| a.saturating_sub(*b)).sum();
    let per_connection = grown as f64 / open.max(1) as f64;
    let mut table = format!(
        "idle: {open} connections open ({failures} failed) in {establish_secs:.2} s over {processes} tool process(es), \
         each on 2 {} channels{}\n",
        if presence || args.protocol.protocol == Protocol::Pusher {
            "private"
        } else {
            "public socket.io"
        },
        if presence { " + presence" } else { "" },
    );
    let mut nodes = Vec::new();
    for (i, server) in args.server.iter().enumerate() {
        let (b, a, s) = (before[i], after[i], &per_server[i]);
        let each = a.saturating_sub(b) as f64 / s.opened.max(1) as f64;
        table.push_str(&format!(
            "  {server} (pid {}): {} connections, RSS {:.1} → {:.1} MiB, {each:.0} bytes ({:.2} KiB) per connection\n",
            args.pid[i],
            s.opened,
            b as f64 / 1048576.0,
            a as f64 / 1048576.0,
            each / 1024.0
        ));
        nodes.push(json!({ "server": server.to_string(), "pid": args.pid[i], "connections": s.opened, "failed": s.failed, "rss_before": b, "rss_after": a, "bytes_per_connection": each }));
    }
    table.push_str(&format!(
        "in all: {per_connection:.0} bytes ({:.2} KiB) per connection",
        per_connection / 1024.0
    ));
    Ok(Report {
        table,
        json: json!({
            "workload": "idle",
            "presence": presence,
            "protocol": format!("{:?}", args.protocol.protocol).to_lowercase(),
            "connections": open,
            "failed": failures,
            "establish_seconds": establish_secs,
            "bytes_per_connection": per_connection,
            "nodes": nodes,
        }),
    })
}

/// Two public channels of user `user`'s own (for socket.io connections, which sign nothing).
fn public_subscriptions(user: usize) -> Vec<(String, Option<String>)> {
    ["a", "b"].map(|c| (format!("bench-idle.{user}.{c}"), None)).into()
}

/// User `user`'s two private channels, and `presence-online` with its channel data if `presence`.
pub(super) fn user_subscriptions(user: usize, presence: bool) -> Vec<(String, Option<String>)> {
    let mut subscriptions = vec![
        (format!("private-individual.message.{user}"), None),
        (format!("private-group.message.{user}"), None),
    ];
    if presence {
        let channel_data =
            json!({ "user_id": user.to_string(), "user_info": { "name": format!("user {user}") } }).to_string();
        subscriptions.push(("presence-online".to_owned(), Some(channel_data)));
    }
    subscriptions
}
