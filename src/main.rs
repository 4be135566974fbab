//! The `chatbox` command: `serve` (the default), `migrate`. Reads the configuration, sets up
//! logging and hands over to the library.

use std::process::ExitCode;

use chatbox::{
    app::App,
    config::{Config, Settings},
    shutdown,
    store::Store,
    telemetry,
};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "chatbox",
    version,
    about = "Real-time chat and Pusher-protocol broadcast server"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP, the REST API and WebSockets (the default).
    Serve,
    /// Run queue workers only (needs REDIS_URL): jobs -> events on the bus.
    Worker,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Measure a running server (see BENCHMARKS.md).
    Bench(chatbox::bench::BenchArgs),
}

fn main() -> ExitCode {
    // A missing .env is normal; a malformed one is worth saying.
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("chatbox: .env: {e}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    let config = match Config::from_settings(cli.settings) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chatbox: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chatbox: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command.unwrap_or(Command::Serve), config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("chatbox: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            if config.uses_dev_secret() {
                tracing::warn!(
                    "PUSHER_APP_SECRET is the public development default: set your own before exposing chatbox"
                );
            }
            raise_open_files_limit();
            let app = App::build(config).await?;
            app.run(shutdown::on_signal()).await
        }
        Command::Worker => chatbox::app::run_worker(config, shutdown::on_signal()).await,
        Command::Bench(args) => {
            raise_open_files_limit();
            chatbox::bench::run(args).await
        }
        Command::Migrate => {
            let store = Store::connect(&config).await?;
            store.migrate().await?;
            tracing::info!(database = ?store.kind(), "migrations applied");
            store.close().await;
            Ok(())
        }
    }
}

/// Every socket is a file: lift the soft open-files limit to the hard one and say what it is.
fn raise_open_files_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(open_files = limit, "open-files limit raised to the hard limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-files limit"),
    }
}
