//! `paraply synth` without the server binary, for trying the generator by hand:
//! `cargo run -p paraply-synth --example synth -- --patients 200 --base-url http://127.0.0.1:18181/fhir`
//! or `… -- --patients 20 --ndjson /tmp/synth`.

use clap::Parser;
use paraply_synth::SynthArgs;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: SynthArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match paraply_synth::run(Cli::parse().args).await {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("synth: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
