//! `paraply serve`, `paraply demo`, `paraply reindex` and `paraply synth`.

use clap::Parser;
use paraply_server::config::{Cli, Command};
use paraply_server::{
    Config, ServerError, engine, load_demo_data, open_stores, reindex_database, run, run_demo,
    shutdown_signal,
};
use tokio::net::TcpListener;

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PARAPLY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = std::env::var("PARAPLY_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    init_logging();
    let cli = Cli::parse();
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
