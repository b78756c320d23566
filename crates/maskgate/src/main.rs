use clap::{Parser, Subcommand};

mod gateway_cmd;

#[derive(Parser)]
#[command(
    name = "maskgate",
    version,
    about = "Masks AWS identifiers in LLM API traffic and restores them in responses"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Gateway(gateway_cmd::GatewayCommand),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Gateway(c) => c.run(),
    };
    std::process::exit(code);
}
