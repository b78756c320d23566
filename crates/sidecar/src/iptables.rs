//! `maskgate iptables install | uninstall | print`: capture outbound TCP into the sidecar (nat OUTPUT → own
//! chain → REDIRECT), in the spirit of `istio-iptables`.
//!
//! Everything lives in chains named `MASKGATE_*` plus one jump from `OUTPUT`, so `uninstall` removes exactly
//! what `install` added. `install` is idempotent: it (re)creates the chains' content and adds the jump once.

use std::process::Command;

pub const NAT_CHAIN: &str = "MASKGATE_OUTPUT";
pub const QUIC_CHAIN: &str = "MASKGATE_QUIC";

#[derive(Debug, Clone)]
pub struct Options {
    pub proxy_port: u16,
    pub proxy_uid: u32,
    pub proxy_gid: u32,
    pub exclude_cidrs: Vec<String>,
    pub exclude_ports: Vec<u16>,
    pub drop_quic: bool,
    pub ipv6: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            proxy_port: 15001,
            proxy_uid: 1337,
            proxy_gid: 1337,
            exclude_cidrs: vec![],
            exclude_ports: vec![],
            drop_quic: false,
            ipv6: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn binary(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// The rules of the chains (without the jumps), one argument vector each, for one family.
pub fn chain_rules(o: &Options, f: Family) -> Result<Vec<Vec<String>>, String> {
    let mut r = Vec::new();
    let c = NAT_CHAIN;
    let uid = o.proxy_uid.to_string();
    let gid = o.proxy_gid.to_string();
    // The sidecar's own traffic is never captured again.
    r.push(s(&[
        "-t",
        "nat",
        "-A",
        c,
        "-m",
        "owner",
        "--uid-owner",
        &uid,
        "-j",
        "RETURN",
    ]));
    r.push(s(&[
        "-t",
        "nat",
        "-A",
        c,
        "-m",
        "owner",
        "--gid-owner",
        &gid,
        "-j",
        "RETURN",
    ]));
    // Loopback: local services (and the sidecar's own ports) are not destinations to inspect.
    r.push(s(&["-t", "nat", "-A", c, "-o", "lo", "-j", "RETURN"]));
    let lo = if f == Family::V4 { "127.0.0.0/8" } else { "::1/128" };
    r.push(s(&["-t", "nat", "-A", c, "-d", lo, "-j", "RETURN"]));
    for cidr in &o.exclude_cidrs {
        let c2 = crate::policy::Cidr::parse(cidr).map_err(|e| format!("--exclude-cidr {e}"))?;
        if c2.addr.is_ipv4() == (f == Family::V4) {
            r.push(s(&["-t", "nat", "-A", c, "-d", cidr.trim(), "-j", "RETURN"]));
        }
    }
    for p in &o.exclude_ports {
        r.push(s(&[
            "-t",
            "nat",
            "-A",
            c,
            "-p",
            "tcp",
            "--dport",
            &p.to_string(),
            "-j",
            "RETURN",
        ]));
    }
    r.push(s(&[
        "-t",
        "nat",
        "-A",
        c,
        "-p",
        "tcp",
        "-j",
        "REDIRECT",
        "--to-ports",
        &o.proxy_port.to_string(),
    ]));
    if o.drop_quic {
        let q = QUIC_CHAIN;
        r.push(s(&[
            "-t",
            "filter",
            "-A",
            q,
            "-m",
            "owner",
            "--uid-owner",
            &uid,
            "-j",
            "RETURN",
        ]));
        r.push(s(&[
            "-t", "filter", "-A", q, "-p", "udp", "--dport", "443", "-j", "DROP",
        ]));
    }
    Ok(r)
}

/// The jumps from the built-in chains: (table, builtin, chain).
fn jumps(o: &Options) -> Vec<(&'static str, &'static str, &'static str)> {
    let mut j = vec![("nat", "OUTPUT", NAT_CHAIN)];
    if o.drop_quic {
        j.push(("filter", "OUTPUT", QUIC_CHAIN));
    }
    j
}

fn jump_args(table: &str, builtin: &str, chain: &str, op: &str) -> Vec<String> {
    let proto = if table == "nat" { "tcp" } else { "udp" };
    s(&[
        "-t",
        table,
        op,
        builtin,
        "-p",
        proto,
        "-m",
        "comment",
        "--comment",
        "maskgate",
        "-j",
        chain,
    ])
}

/// What `install` runs, as shell lines (for `print`).
pub fn print(o: &Options) -> Result<String, String> {
    let mut out = String::new();
    for f in families(o) {
        let b = f.binary();
        for (t, _, c) in jumps(o) {
            out.push_str(&format!("{b} -t {t} -N {c}\n"));
        }
        for r in chain_rules(o, f)? {
            out.push_str(&format!("{b} {}\n", r.join(" ")));
        }
        for (t, bi, c) in jumps(o) {
            out.push_str(&format!("{b} {}\n", jump_args(t, bi, c, "-A").join(" ")));
        }
    }
    Ok(out)
}

fn families(o: &Options) -> Vec<Family> {
    if o.ipv6 {
        vec![Family::V4, Family::V6]
    } else {
        vec![Family::V4]
    }
}

fn run(bin: &str, args: &[String]) -> Result<std::process::Output, String> {
    Command::new(bin).args(args).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("{bin} not found: install it (Debian/Ubuntu: apt-get install -y iptables)")
        } else {
            format!("{bin}: {e}")
        }
    })
}

fn check(bin: &str, args: &[String]) -> Result<(), String> {
    let o = run(bin, args)?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{bin} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
}

pub fn require_root() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("must run as root (or with CAP_NET_ADMIN): iptables rules are changed".into());
    }
    Ok(())
}

fn chain_exists(bin: &str, table: &str, chain: &str) -> Result<bool, String> {
    Ok(run(bin, &s(&["-t", table, "-n", "-L", chain]))?.status.success())
}

/// Installs (or refreshes) the rules. Idempotent.
pub fn install(o: &Options) -> Result<(), String> {
    require_root()?;
    for f in families(o) {
        let b = f.binary();
        let rules = chain_rules(o, f)?;
        // A previous install with --drop-quic that this one drops: remove it.
        if !o.drop_quic {
            remove(b, "filter", "OUTPUT", QUIC_CHAIN)?;
        }
        for (t, _, c) in jumps(o) {
            if chain_exists(b, t, c)? {
                check(b, &s(&["-t", t, "-F", c]))?;
            } else {
                check(b, &s(&["-t", t, "-N", c]))?;
            }
        }
        for r in &rules {
            check(b, r)?;
        }
        for (t, bi, c) in jumps(o) {
            if !run(b, &jump_args(t, bi, c, "-C"))?.status.success() {
                check(b, &jump_args(t, bi, c, "-A"))?;
            }
        }
    }
    Ok(())
}

/// Removes the jumps (all copies) and the chain, if present.
fn remove(b: &str, table: &str, builtin: &str, chain: &str) -> Result<(), String> {
    let mut n = 0;
    while run(b, &jump_args(table, builtin, chain, "-C"))?.status.success() {
        check(b, &jump_args(table, builtin, chain, "-D"))?;
        n += 1;
        if n > 100 {
            return Err(format!("{b}: could not remove the jump to {chain}"));
        }
    }
    if chain_exists(b, table, chain)? {
        check(b, &s(&["-t", table, "-F", chain]))?;
        check(b, &s(&["-t", table, "-X", chain]))?;
    }
    Ok(())
}

/// Removes exactly what `install` adds (for both families, whatever the options were).
pub fn uninstall(o: &Options) -> Result<(), String> {
    require_root()?;
    for f in families(o) {
        let b = f.binary();
        remove(b, "nat", "OUTPUT", NAT_CHAIN)?;
        remove(b, "filter", "OUTPUT", QUIC_CHAIN)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan() {
        let o = Options {
            exclude_cidrs: vec!["10.9.0.0/16".into(), "fd00::/8".into()],
            exclude_ports: vec![22],
            drop_quic: true,
            ..Default::default()
        };
        let p = print(&o).unwrap();
        assert!(p.contains("iptables -t nat -A MASKGATE_OUTPUT -m owner --uid-owner 1337 -j RETURN"));
        assert!(p.contains("iptables -t nat -A MASKGATE_OUTPUT -d 10.9.0.0/16 -j RETURN"));
        assert!(p.contains("ip6tables -t nat -A MASKGATE_OUTPUT -d fd00::/8 -j RETURN"));
        assert!(!p.contains("iptables -t nat -A MASKGATE_OUTPUT -d fd00::/8"));
        assert!(p.contains("--dport 22 -j RETURN"));
        assert!(p.contains("-p tcp -j REDIRECT --to-ports 15001"));
        assert!(p.contains("-t filter -A MASKGATE_QUIC -p udp --dport 443 -j DROP"));
        assert!(p.contains("iptables -t nat -A OUTPUT -p tcp -m comment --comment maskgate -j MASKGATE_OUTPUT"));
        // The REDIRECT comes after every RETURN.
        let v4: Vec<&str> = p
            .lines()
            .filter(|l| l.starts_with("iptables -t nat -A MASKGATE_OUTPUT"))
            .collect();
        assert!(v4.last().unwrap().contains("REDIRECT"));
        assert!(print(&Options {
            exclude_cidrs: vec!["nope".into()],
            ..Default::default()
        })
        .is_err());
    }
}
