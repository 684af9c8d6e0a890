//! The `podium` command: parse the command line, load the configuration, log, run.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use podium::config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

/// Server-side stream moderation for Jitsi Meet.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The TOML configuration file (see config/podium.toml); PODIUM_* variables override it.
    #[arg(long, short, env = "PODIUM_CONFIG")]
    config: Option<PathBuf>,

    /// Check the configuration, print it with the secret redacted, and exit.
    #[arg(long)]
    check: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Work with the rules table of the configured database.
    Rules {
        #[command(subcommand)]
        action: RulesAction,
    },
    /// Explain, per kind, what an occupant may send and why: the rules and grants that decided, the
    /// inputs used (role, affiliation, identity, hand, time, queue position) and why other rules
    /// lost. Reads the rules and podium's live view (the occupants and queue tables) from the
    /// configured database.
    Explain {
        /// The room: its name (`standup`, `[acme]standup`) or JID.
        room: String,
        /// The occupant: nick, real JID (full or bare), token user id or email.
        occupant: String,
    },
}

#[derive(Debug, clap::Subcommand)]
enum RulesAction {
    /// Check every row: errors are rows podium skips, warnings rows it keeps that are probably
    /// mistakes. Exits 1 when there is an error.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("podium: {error}");
            return ExitCode::from(2);
        }
    };
    if cli.check {
        println!("{config:#?}");
        return ExitCode::SUCCESS;
    }
    let now = jiff::Timestamp::now();
    match cli.command {
        Some(Command::Rules {
            action: RulesAction::Check,
        }) => return tool(podium::tools::rules_check(&config, now)),
        Some(Command::Explain { room, occupant }) => {
            return tool(async {
                podium::tools::explain_occupant(&config, &room, &occupant, now)
                    .await
                    .map(|report| (report, false))
            });
        }
        None => {}
    }
    init_tracing(&config);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("podium: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(podium::run(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "podium stopped");
            eprintln!("podium: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs an admin command on a fresh runtime and prints its report; exit 1 when it reports an error.
fn tool<F>(command: F) -> ExitCode
where
    F: std::future::Future<Output = Result<(String, bool), podium::tools::ToolError>>,
{
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("podium: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok((report, failed)) => {
            print!("{report}");
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(error) => {
            eprintln!("podium: {error}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(config: &Config) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.filter));
    // Colours only on a terminal: journald and log files get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
