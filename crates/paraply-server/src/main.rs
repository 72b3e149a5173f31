//! `paraply serve`, `paraply demo`, `paraply reindex` and `paraply synth`.

use clap::Parser;
use paraply_server::config::{Cli, Command};
use paraply_server::{
    Config, ServerError, engine, load_demo_data, open_stores, reindex_database, run, run_demo,
    shutdown_signal,
};
use tokio::net::TcpListener;

/// Log lines as `PARAPLY_LOG` (a tracing filter, default `info`) and `PARAPLY_LOG_FORMAT`
/// (`text`, the default, or `json`) ask. A value that cannot be used is an error naming the
/// variable: a server logging other than as configured would hide what it was asked to show.
fn init_logging() -> Result<(), String> {
    let filter = match setting("PARAPLY_LOG")? {
        None => tracing_subscriber::EnvFilter::new("info"),
        Some(value) => tracing_subscriber::EnvFilter::builder()
            .parse(&value)
            .map_err(|e| {
                format!("PARAPLY_LOG: '{value}' is not a log filter like 'info' or 'info,paraply_core=debug': {e}")
            })?,
    };
    let json = match setting("PARAPLY_LOG_FORMAT")? {
        None => false,
        Some(value) if value.eq_ignore_ascii_case("text") => false,
        Some(value) if value.eq_ignore_ascii_case("json") => true,
        Some(value) => {
            return Err(format!(
                "PARAPLY_LOG_FORMAT: '{value}' is not a log format (use text or json)"
            ));
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
    Ok(())
}

/// An environment variable; unset and empty alike are `None` (as for the flags' variables).
fn setting(name: &str) -> Result<Option<String>, String> {
    match std::env::var(name) {
        Ok(value) if value.is_empty() => Ok(None),
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{name}: the value is not UTF-8")),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Err(error) = init_logging() {
        eprintln!("paraply: {error}");
        return std::process::ExitCode::FAILURE;
    }
    match start(cli.command).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "paraply stopped");
            eprintln!("paraply: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn start(command: Command) -> Result<(), ServerError> {
    let (settings, demo) = match command {
        Command::Serve(settings) => (settings, false),
        Command::Demo(settings) => (settings, true),
        Command::Synth(args) => {
            paraply_synth::run(args)
                .await
                .map_err(|e| ServerError::Synth(e.to_string()))?;
            return Ok(());
        }
        Command::Reindex(settings) => {
            return reindex_database(&settings.database_url).await;
        }
    };
    let config = if demo {
        Config::for_demo(&settings)?
    } else {
        Config::from_settings(&settings)?
    };
    let stores = open_stores(&config).await?;
    if demo {
        let loaded = load_demo_data(&engine(stores.resources.clone(), &config)).await?;
        tracing::info!(resources = loaded, "demo data loaded");
    }
    let listener = TcpListener::bind(config.listen).await?;
    tracing::info!(
        address = %listener.local_addr()?,
        "Paraply is serving FHIR R4 at http://{}/fhir",
        listener.local_addr()?
    );
    if demo {
        run_demo(listener, stores, &config, shutdown_signal()).await
    } else {
        run(listener, stores, &config, shutdown_signal()).await
    }
}
