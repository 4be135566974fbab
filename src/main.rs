//! The `chatbox` command: `serve` (the default), `migrate`. Reads the configuration, sets up
//! logging and hands over to the library.

use std::process::ExitCode;

use chatbox::{
    app::App,
    config::{Config, Settings},
    shutdown,
    store::{AccountRef, Store},
    telemetry,
};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, parser::ValueSource};

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
    /// Grant, revoke or list admin rights (stored in the database; SECURITY.md).
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
}

#[derive(Subcommand)]
enum AdminAction {
    /// Make an account an admin.
    Grant {
        /// The account's e-mail or user id.
        account: AccountRef,
    },
    /// Take admin rights away from an account.
    Revoke {
        /// The account's e-mail or user id.
        account: AccountRef,
    },
    /// List the admins.
    List,
}

fn main() -> ExitCode {
    // A missing .env is normal; a malformed one is worth saying.
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("chatbox: .env: {e}");
        return ExitCode::from(2);
    }
    let matches = Cli::command().get_matches();
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let echo_file = match cli.settings.echo_config.as_deref().map(chatbox::echo_config::read) {
        None => None,
        Some(Ok(file)) => Some(file),
        Some(Err(e)) => {
            eprintln!("chatbox: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(file) = &echo_file {
        // The command line and the environment (.env included) win over the file.
        file.apply(&mut cli.settings, |field| {
            matches!(
                matches.value_source(field),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        });
    }
    let config = match Config::from_settings(cli.settings) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chatbox: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);
    if let Some(warning) = echo_file.as_ref().and_then(|f| f.warning()) {
        tracing::warn!("{warning}");
    }
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
            raise_open_files_limit();
            let app = App::build(config).await?;
            app.run(shutdown::on_signal()).await
        }
        Command::Worker => chatbox::app::run_worker(config, shutdown::on_signal()).await,
        Command::Bench(args) => {
            raise_open_files_limit();
            chatbox::bench::run(args).await
        }
        Command::Admin { action } => admin(action, &config).await,
        Command::Migrate => {
            let store = Store::connect(&config).await?;
            store.migrate().await?;
            tracing::info!(database = ?store.kind(), "migrations applied");
            store.close().await;
            Ok(())
        }
    }
}

/// `chatbox admin …`: prints one line per account changed or listed.
async fn admin(action: AdminAction, config: &Config) -> anyhow::Result<()> {
    let store = Store::connect(config).await?;
    store.migrate().await?;
    let changed = match &action {
        AdminAction::Grant { account } => Some((account, true)),
        AdminAction::Revoke { account } => Some((account, false)),
        AdminAction::List => None,
    };
    let result = match changed {
        Some((account, grant)) => match store.set_admin(account, grant).await? {
            Some(user) => {
                let verb = if grant {
                    "is now an admin"
                } else {
                    "is no longer an admin"
                };
                println!("{} <{}> (id {}) {verb}", user.name, user.email, user.id);
                tracing::info!(user_id = %user.id, admin = grant, "admin rights changed");
                Ok(())
            }
            None => Err(anyhow::anyhow!("no account {account:?}")),
        },
        None => {
            let admins = store.admins().await?;
            if admins.is_empty() {
                println!("no admins: grant with `chatbox admin grant <email>`");
            }
            for user in admins {
                println!("{}\t{}\t{}", user.id, user.email, user.name);
            }
            Ok(())
        }
    };
    store.close().await;
    result
}

/// Every socket is a file: lift the soft open-files limit to the hard one and say what it is.
fn raise_open_files_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(open_files = limit, "open-files limit raised to the hard limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-files limit"),
    }
}
