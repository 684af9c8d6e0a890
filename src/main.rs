//! The `podium` command: parse the command line, load the configuration, log, run.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use podium::config::{Config, LogFormat};
use podium::rules::check::{Severity, check_rows};
use podium::store::Store;
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
    if let Some(Command::Rules {
        action: RulesAction::Check,
    }) = cli.command
    {
        return rules_check(&config);
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

/// `podium rules check`: reads the rules (running the migrations if needed) and prints the findings.
fn rules_check(config: &Config) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("podium: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let rows = runtime.block_on(async {
        let store = Store::open(&config.database, String::new()).await?;
        let rows = store.load_rules().await;
        store.close().await;
        rows
    });
    let rows = match rows {
        Ok(rows) => rows,
        Err(error) => {
            eprintln!("podium: {error}");
            return ExitCode::FAILURE;
        }
    };
    let findings = check_rows(&rows, jiff::Timestamp::now());
    for finding in &findings {
        println!("{finding}");
    }
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    println!(
        "{} rows, {errors} errors, {} warnings",
        rows.len(),
        findings.len() - errors
    );
    if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
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
