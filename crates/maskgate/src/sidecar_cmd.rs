//! Subcommands of the sidecar role: `sidecar`, `ca init|env`, `iptables install|uninstall|print`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use maskgate_sidecar::iptables;

#[derive(Subcommand)]
pub enum SidecarCommand {
    /// Run the sidecar: transparent capture (iptables REDIRECT) and explicit proxy on [::]:15001 (IPv4 and IPv6), TLS
    /// interception for the intercept list, egress policy, admin on 127.0.0.1:15000.
    Sidecar {
        /// TOML configuration file.
        #[arg(long, short, env = "MASKGATE_SIDECAR_CONFIG")]
        config: Option<PathBuf>,
        /// The gateway's configuration file: its route hosts become the intercept list (unless the sidecar's
        /// file sets `intercept`).
        #[arg(long)]
        gateway_config: Option<PathBuf>,
    },
    /// The local certificate authority the sidecar signs leaf certificates with.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Capture outbound TCP into the sidecar with iptables (needs root / CAP_NET_ADMIN).
    #[command(subcommand)]
    Iptables(IptablesCommand),
}

#[derive(Subcommand)]
pub enum CaCommand {
    /// Write a new CA: DIR/ca.crt and DIR/ca.key (mode 0600).
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// Replace an existing CA.
        #[arg(long)]
        force: bool,
    },
    /// Issue a certificate signed by the CA in DIR: for the gateway's TLS listener (server) or for a sidecar's
    /// mTLS identity (--client). Writes OUT/STEM.crt (leaf + CA) and OUT/STEM.key (0600).
    Issue {
        #[arg(long)]
        dir: PathBuf,
        /// DNS name or IP address (repeatable; the first is also the common name).
        #[arg(long = "name", required = true)]
        names: Vec<String>,
        /// A client certificate (mTLS) instead of a server certificate.
        #[arg(long)]
        client: bool,
        /// Output directory (default: DIR).
        #[arg(long)]
        out: Option<PathBuf>,
        /// File name stem (default: "server" or "client").
        #[arg(long)]
        stem: Option<String>,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Write DIR/bundle.pem (system roots + the CA) and print the variables each runtime needs.
    Env {
        #[arg(long)]
        dir: PathBuf,
        /// System CA bundle to start from (default: the first of the usual locations).
        #[arg(long)]
        system_bundle: Option<PathBuf>,
    },
}

#[derive(Args)]
pub struct IptArgs {
    /// Port the sidecar listens on.
    #[arg(long, default_value_t = 15001)]
    proxy_port: u16,
    /// UID whose traffic is never captured (the sidecar's).
    #[arg(long, default_value_t = 1337)]
    proxy_uid: u32,
    /// GID whose traffic is never captured.
    #[arg(long, default_value_t = 1337)]
    proxy_gid: u32,
    /// Destination network left alone (repeatable): `10.0.0.0/8`, `fd00::/8`.
    #[arg(long = "exclude-cidr")]
    exclude_cidr: Vec<String>,
    /// Destination TCP port left alone (repeatable).
    #[arg(long = "exclude-port")]
    exclude_port: Vec<u16>,
    /// Also drop outbound UDP 443 so that QUIC cannot bypass the capture.
    #[arg(long)]
    drop_quic: bool,
    /// IPv4 only (skip ip6tables).
    #[arg(long)]
    no_ipv6: bool,
}

#[derive(Subcommand)]
pub enum IptablesCommand {
    /// Add the rules (idempotent).
    Install(IptArgs),
    /// Remove exactly the rules `install` adds.
    Uninstall(IptArgs),
    /// Print the commands `install` runs.
    Print(IptArgs),
}

impl IptArgs {
    fn options(self) -> iptables::Options {
        iptables::Options {
            proxy_port: self.proxy_port,
            proxy_uid: self.proxy_uid,
            proxy_gid: self.proxy_gid,
            exclude_cidrs: self.exclude_cidr,
            exclude_ports: self.exclude_port,
            drop_quic: self.drop_quic,
            ipv6: !self.no_ipv6,
        }
    }
}

impl SidecarCommand {
    pub fn run(self) -> i32 {
        let r = match self {
            SidecarCommand::Sidecar { config, gateway_config } => {
                maskgate_sidecar::run(config, gateway_config).map_err(|e| format!("sidecar: {e}"))
            }
            SidecarCommand::Ca(CaCommand::Init { dir, force }) => {
                maskgate_sidecar::ca::init(&dir, force).map(|(c, k)| {
                    println!("CA certificate: {}\nCA key (0600):  {}", c.display(), k.display());
                })
            }
            .map_err(|e| format!("ca init: {e}")),
            SidecarCommand::Ca(CaCommand::Issue {
                dir,
                names,
                client,
                out,
                stem,
                days,
            }) => {
                let usage = if client {
                    maskgate_sidecar::ca::Usage::Client
                } else {
                    maskgate_sidecar::ca::Usage::Server
                };
                let stem = stem.unwrap_or_else(|| if client { "client" } else { "server" }.into());
                let out = out.unwrap_or_else(|| dir.clone());
                maskgate_sidecar::ca::issue(&dir, &names, usage, &out, &stem, days)
                    .map(|(c, k)| {
                        println!(
                            "certificate: {}
key (0600):  {}",
                            c.display(),
                            k.display()
                        )
                    })
                    .map_err(|e| format!("ca issue: {e}"))
            }
            SidecarCommand::Ca(CaCommand::Env { dir, system_bundle }) => {
                { maskgate_sidecar::ca::env(&dir, system_bundle.as_deref()).map(|s| print!("{s}")) }
                    .map_err(|e| format!("ca env: {e}"))
            }
            SidecarCommand::Iptables(IptablesCommand::Install(a)) => {
                iptables::install(&a.options()).map_err(|e| format!("iptables install: {e}"))
            }
            SidecarCommand::Iptables(IptablesCommand::Uninstall(a)) => {
                iptables::uninstall(&a.options()).map_err(|e| format!("iptables uninstall: {e}"))
            }
            SidecarCommand::Iptables(IptablesCommand::Print(a)) => iptables::print(&a.options())
                .map(|s| print!("{s}"))
                .map_err(|e| format!("iptables print: {e}")),
        };
        match r {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("maskgate {e}");
                1
            }
        }
    }
}
