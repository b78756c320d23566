//! Subcommands of the gateway role: `gateway`, `check-config`, `demo`.

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum GatewayCommand {
    /// Run the gateway (proxy and admin listeners). With no file: the three providers allowlisted,
    /// embedded vault, proxy 0.0.0.0:8000, admin 127.0.0.1:8001.
    Gateway {
        /// TOML configuration file.
        #[arg(long, short, env = "MASKGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Validate a gateway configuration file; errors name the key.
    CheckConfig {
        /// TOML configuration file.
        file: PathBuf,
    },
    /// Run the whole flow offline: gateway and a mock LLM provider on free ports, a sample conversation.
    Demo,
    /// Run the built-in mock LLM provider (Anthropic, OpenAI, Gemini formats) for local tests and benchmarks.
    #[command(hide = true)]
    MockProvider {
        #[arg(long, default_value = "127.0.0.1:9999")]
        listen: std::net::SocketAddr,
    },
}

impl GatewayCommand {
    pub fn run(self) -> i32 {
        match self {
            GatewayCommand::Gateway { config } => match maskgate_gateway::run(config) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("maskgate gateway: {e}");
                    2
                }
            },
            GatewayCommand::CheckConfig { file } => match maskgate_gateway::check_config(&file) {
                Ok(warnings) => {
                    for w in &warnings {
                        eprintln!("warning: {w}");
                    }
                    println!("{}: OK", file.display());
                    0
                }
                Err(e) => {
                    eprintln!("{}: {e}", file.display());
                    1
                }
            },
            GatewayCommand::MockProvider { listen } => match maskgate_gateway::demo::run_mock(listen) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("maskgate mock-provider: {e}");
                    1
                }
            },
            GatewayCommand::Demo => match maskgate_gateway::demo::run() {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("maskgate demo: {e}");
                    1
                }
            },
        }
    }
}
