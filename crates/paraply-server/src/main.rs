//! `paraply serve`, `paraply demo`, `paraply reindex`, `paraply synth` and `paraply audit`.

use clap::Parser;
use paraply_server::config::{AuditCommand, Cli, Command};
use paraply_server::{
    Config, ServerError, engine, load_demo_data, open_stores, purge_audit_log, reindex_database,
    run, run_demo, shutdown_signal, verify_audit_log,
};
use tokio::net::TcpListener;

/// mimalloc instead of glibc's malloc: see the dependency's note in Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        Command::Audit(command) => return audit(command).await,
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

/// `paraply audit verify|purge`: the outcome on stdout; a broken chain is an error.
async fn audit(command: AuditCommand) -> Result<(), ServerError> {
    match command {
        AuditCommand::Verify(settings) => {
            let config = Config::for_audit(&settings)?;
            let verified = verify_audit_log(&config.database_url).await?;
            let mut entries = 0;
            for chain in &verified.chains {
                entries += chain.entries;
                println!(
                    "chain {}: {} entries (positions {} to {})",
                    chain.chain,
                    chain.entries,
                    chain.anchor + 1,
                    chain.head
                );
            }
            match verified.broken {
                None => {
                    println!(
                        "access log OK: {entries} entries in {} chains",
                        verified.chains.len()
                    );
                    Ok(())
                }
                Some(link) => {
                    let event = link.id.as_deref().unwrap_or("none");
                    let message = format!(
                        "access log BROKEN at chain {}, position {} (AuditEvent {event}): {}",
                        link.chain, link.position, link.problem
                    );
                    println!("{message}");
                    Err(ServerError::Audit(message))
                }
            }
        }
        AuditCommand::Purge(settings) => {
            let config = Config::for_audit(&settings)?;
            let years = config.file.audit.retention_years;
            let purged = purge_audit_log(&config.database_url, years).await?;
            for anchor in &purged.anchors {
                println!(
                    "chain {} now starts after position {}",
                    anchor.chain, anchor.position
                );
            }
            println!(
                "purged {} access-log entries older than {years} years",
                purged.deleted
            );
            Ok(())
        }
    }
}
