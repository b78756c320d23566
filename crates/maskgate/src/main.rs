//! maskgate: one binary, several roles.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod gateway_cmd;
mod offline;
mod sidecar_cmd;

#[derive(Parser)]
#[command(
    name = "maskgate",
    version,
    about = "Keeps AWS identifiers out of third-party LLM APIs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Mask AWS identifiers in stdin and write the result to stdout (streaming; placeholders numbered per run).
    Mask(offline::MaskArgs),
    /// Put the originals back into stdin, using a mappings file written by `mask --mappings`.
    Unmask(offline::UnmaskArgs),
    /// List the identifier kinds: name, placeholder prefix, tier.
    Kinds,
    #[command(flatten)]
    Gateway(gateway_cmd::GatewayCommand),
    #[command(flatten)]
    Sidecar(sidecar_cmd::SidecarCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Mask(args) => offline::mask(args),
        Command::Unmask(args) => offline::unmask(args),
        Command::Kinds => offline::kinds(),
        Command::Gateway(c) => return ExitCode::from(c.run() as u8),
        Command::Sidecar(c) => return ExitCode::from(c.run() as u8),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("maskgate: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
