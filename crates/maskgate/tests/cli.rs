//! The offline CLI, run as a process: `maskgate mask` / `unmask` / `kinds`; and the sidecar reading its intercept
//! list from a gateway started in-process.

use std::io::{Read, Seek, Write};
use std::process::{Command, Stdio};

/// Starts `maskgate args` with its output piped, and a thread writing `stdin` to it (a write error, when the
/// process stops reading, is its business).
fn spawn_fed(args: &[&str], stdin: Vec<u8>) -> (std::process::Child, std::thread::JoinHandle<()>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_maskgate"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("maskgate runs");
    let mut input = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    (child, writer)
}

/// A finished run as `(exit code, stdout, stderr)`.
fn outcome(out: std::process::Output) -> (i32, Vec<u8>, String) {
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn maskgate(args: &[&str], stdin: &[u8]) -> (i32, Vec<u8>, String) {
    let (child, writer) = spawn_fed(args, stdin.to_vec());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    outcome(out)
}

/// `maskgate` with an open file as its stdin (read from the file's offset).
fn maskgate_on(args: &[&str], stdin: std::fs::File) -> (i32, Vec<u8>, String) {
    outcome(
        Command::new(env!("CARGO_BIN_EXE_maskgate"))
            .args(args)
            .stdin(Stdio::from(stdin))
            .output()
            .expect("maskgate runs"),
    )
}

/// `maskgate` with `stdin` in a regular file (`name`, under [`tmp`]): workers then read ahead (a second block each).
fn maskgate_from_file(args: &[&str], stdin: &[u8], name: &str) -> (i32, Vec<u8>, String) {
    let path = tmp(name);
    std::fs::write(&path, stdin).unwrap();
    maskgate_on(args, std::fs::File::open(&path).unwrap())
}

/// Lines `line(0)`, `line(1)`, … until the text holds `bytes` bytes.
fn lines(bytes: usize, line: impl Fn(u64) -> String) -> String {
    let mut text = String::new();
    let mut n = 0;
    while text.len() < bytes {
        text.push_str(&line(n));
        n += 1;
    }
    text
}

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("maskgate-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn mask_then_unmask_round_trip_text() {
    let map = tmp("text.json");
    let input = "EC2 i-1234567890abcdef0 in vpc-0a1b2c3d4e5f67890\naccount 123456789012 and i-1234567890abcdef0\n";
    let (code, out, err) = maskgate(&["mask", "--mappings", map.to_str().unwrap()], input.as_bytes());
    assert_eq!(code, 0, "{err}");
    let masked = String::from_utf8(out).unwrap();
    assert_eq!(
        masked,
        "EC2 AWS_EC2_001 in AWS_VPC_001\naccount AWS_ACCOUNT_001 and AWS_EC2_001\n"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&map).unwrap().permissions().mode() & 0o777, 0o600);
    let (code, back, err) = maskgate(&["unmask", "--mappings", map.to_str().unwrap()], masked.as_bytes());
    assert_eq!(code, 0, "{err}");
    assert_eq!(String::from_utf8(back).unwrap(), input);
}

#[test]
fn mask_json_body() {
    let map = tmp("json.json");
    let body =
        r#"{"model":"m","messages":[{"role":"user","content":"arn:aws:iam::123456789012:role/Admin says \"hi\""}]}"#;
    let (code, out, err) = maskgate(
        &["mask", "--json", "--mappings", map.to_str().unwrap()],
        body.as_bytes(),
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["messages"][0]["content"], "AWS_IAM_ROLE_001 says \"hi\"");
    let (code, back, _) = maskgate(&["unmask", "--json", "--mappings", map.to_str().unwrap()], &out);
    assert_eq!(code, 0);
    let v2: serde_json::Value = serde_json::from_slice(&back).unwrap();
    let orig: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v2, orig);
}

/// `--config` reads the gateway's `[masking]` keys: `keep_aws_managed` reaches the engine through the TOML (the
/// engine's own test builds the struct directly).
#[test]
fn mask_config_file_reaches_the_engine() {
    let text = b"attach arn:aws:iam::aws:policy/ReadOnlyAccess and alias/aws/s3\n";
    let (code, out, err) = maskgate(&["mask"], text);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "attach AWS_IAM_POLICY_001 and AWS_KMS_ALIAS_001\n",
        "AWS-managed names are masked by default"
    );
    let cfg = tmp("keep.toml");
    std::fs::write(&cfg, "keep_aws_managed = true\n").unwrap();
    let (code, out, err) = maskgate(&["mask", "--config", cfg.to_str().unwrap()], text);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, text, "kept when the configuration says so");
    std::fs::write(&cfg, "keep_aws_manged = true\n").unwrap();
    let (code, _, err) = maskgate(&["mask", "--config", cfg.to_str().unwrap()], text);
    assert_ne!(code, 0);
    assert!(err.contains("keep_aws_manged"), "a misspelt key is named: {err}");
}

#[test]
fn bad_input_is_refused_clearly() {
    let (code, _, err) = maskgate(&["mask", "--json"], b"{\"a\": ");
    assert_eq!(code, 2);
    assert!(err.contains("invalid JSON"), "{err}");
    let (code, _, err) = maskgate(&["mask"], b"ok line\n\xff\xfe bad\n");
    assert_eq!(code, 2);
    assert!(err.contains("not valid UTF-8"), "{err}");
    let (code, _, err) = maskgate(&["unmask", "--mappings", "/nonexistent/map.json"], b"x");
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/map.json"), "{err}");
    // No original value in any error message.
    let (code, _, err) = maskgate(&["mask", "--json"], b"{\"a\": \"i-1234567890abcdef0\"");
    assert_eq!(code, 2);
    assert!(!err.contains("i-1234567890abcdef0"), "{err}");
}

#[test]
fn large_input_streams_in_blocks() {
    // 3 MiB with ids everywhere; the first 1.5 MiB have no line end at all (longer than a block).
    let mut input = String::new();
    let mut n = 0u64;
    while input.len() < 3 << 20 {
        input.push_str(&format!(
            "instance i-{n:017x} talks to 10.0.{}.{} ",
            (n / 250) % 250,
            n % 250 + 1
        ));
        if n.is_multiple_of(7) && input.len() > 3 << 19 {
            input.push('\n');
        }
        n += 1;
    }
    let (code, out, err) = maskgate(&["mask"], input.as_bytes());
    assert_eq!(code, 0, "{err}");
    let out = String::from_utf8(out).unwrap();
    assert!(!out.contains("i-0"), "an id leaked");
    assert!(!out.contains("10.0."), "an ip leaked");
    assert_eq!(out.matches("AWS_EC2_").count() as u64, n);
}

#[test]
fn numbering_holds_over_many_distinct_values() {
    // More distinct values than the gateway's vault keeps per tenant (it evicts); one run keeps them all, so the
    // first value, seen again at the end, comes back under its first placeholder.
    let n = 70_000u64;
    let mut input = String::new();
    for k in 0..n {
        input.push_str(&format!("instance i-{k:017x} is up\n"));
    }
    input.push_str("instance i-00000000000000000 is up\n");
    let (code, out, err) = maskgate(&["mask", "--threads", "2"], input.as_bytes());
    assert_eq!(code, 0, "{err}");
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len() as u64, n + 1);
    assert_eq!(lines[0], "instance AWS_EC2_001 is up");
    assert_eq!(lines[n as usize], lines[0]);
    assert_eq!(lines[n as usize - 1], format!("instance AWS_EC2_{n} is up"));
}

#[test]
fn kinds_lists_the_catalogue() {
    let (code, out, _) = maskgate(&["kinds"], b"");
    assert_eq!(code, 0);
    let out = String::from_utf8(out).unwrap();
    assert!(out.lines().count() >= 51);
    assert!(out.contains("ec2_instance") && out.contains("AWS_EC2"));
}

#[test]
fn file_stdin_is_read_from_its_offset() {
    // A regular-file stdin is read from where its offset stands (a shell may have read some of it), and the
    // offset is left at the end, as for any reader; the output is the pipe's. Short lines, one longer than a
    // block, values recurring across blocks, no final line end.
    let mut input = lines(3 << 20, |n| {
        let line = format!(
            "vm i-{:08x} of account 1234567{:05} at 10.1.{}.{}\n",
            n % 4099,
            n % 977,
            n % 200,
            n % 250
        );
        match n {
            9000 => format!("{line}long line: {}\n", "sg-0123abcd word ".repeat(20_000)),
            _ => line,
        }
    });
    input.push_str("last line i-0abc1234 without an end");
    let path = tmp("file-input.txt");
    std::fs::write(&path, &input).unwrap();
    for skip in [0, 100_003] {
        let (code, piped, err) = maskgate(&["mask", "--threads", "2"], &input.as_bytes()[skip..]);
        assert_eq!(code, 0, "{err}");
        assert!(piped.windows(8).any(|w| w == b"AWS_EC2_"), "nothing masked");
        let mut file = std::fs::File::open(&path).unwrap();
        file.seek(std::io::SeekFrom::Start(skip as u64)).unwrap();
        let (code, out, err) = maskgate_on(&["mask", "--threads", "2"], file.try_clone().unwrap());
        assert_eq!(code, 0, "{err}");
        assert!(
            out == piped,
            "a file stdin from byte {skip} gave other output than a pipe"
        );
        assert_eq!(
            file.stream_position().unwrap(),
            input.len() as u64,
            "stdin's offset is left at the end"
        );
    }
}

#[test]
fn threads_do_not_change_the_output() {
    // 3.5 MiB of lines (blocks are 256 KiB) in which values recur across blocks, also without their context.
    let input = lines(7 << 19, |n| {
        format!(
            "line {n}: account 1234567{:05} runs i-{:08x} in subnet-{:08x}; see 1234567{:05} too\n",
            n % 977,
            n % 1013,
            n % 89,
            n % 977
        )
    });
    let maps = tmp("threads-maps.json");
    let mut outs = Vec::new();
    for t in ["1", "3"] {
        let (code, out, err) = maskgate(
            &["mask", "--threads", t, "--mappings", maps.to_str().unwrap()],
            input.as_bytes(),
        );
        assert_eq!(code, 0, "{err}");
        outs.push(out);
    }
    // From a regular file, workers read ahead (up to two blocks each): more workers than CPUs do that often.
    let (code, out, err) = maskgate_from_file(&["mask", "--threads", "5"], input.as_bytes(), "threads-input.txt");
    assert_eq!(code, 0, "{err}");
    outs.push(out);
    assert!(outs.iter().all(|o| *o == outs[0]), "output depends on --threads");
    let masked = String::from_utf8(outs.pop().unwrap()).unwrap();
    assert!(!masked.contains("i-0") && !masked.contains("subnet-0"), "an id leaked");
    assert!(masked.contains("AWS_ACCOUNT_"), "{}", &masked[..200]);
    let (code, back, err) = maskgate(&["unmask", "--mappings", maps.to_str().unwrap()], masked.as_bytes());
    assert_eq!(code, 0, "{err}");
    assert!(back == input.as_bytes(), "round trip changed the text");

    // Invalid UTF-8 deep in a later block is reported at its offset, whatever the thread count.
    let mut bad = input.into_bytes();
    let at = (5 << 19) + 12345;
    bad[at] = 0xff;
    let (code, _, err) = maskgate(&["mask", "--threads", "2"], &bad);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("byte {at}")), "{err}");

    // A failure early in a long input ends the run (no worker is left waiting for a turn that will not come,
    // also with more workers than CPUs reading a file, where they often hold two blocks each) after writing the
    // blocks before it, exactly as a good run writes them.
    bad[at] = b'x';
    let long = bad.repeat(4);
    let (code, good, err) = maskgate(&["mask", "--threads", "1"], &long);
    assert_eq!(code, 0, "{err}");
    let mut long = long;
    let at = (3 << 19) + 7;
    long[at] = 0xff;
    for (t, file) in [("1", false), ("2", false), ("5", false), ("5", true)] {
        let (tx, rx) = std::sync::mpsc::channel();
        let input = long.clone();
        std::thread::spawn(move || {
            let args = ["mask", "--threads", t];
            tx.send(match file {
                true => maskgate_from_file(&args, &input, "threads-long.txt"),
                false => maskgate(&args, &input),
            })
        });
        let (code, out, err) = rx
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("maskgate mask ends after an early failure");
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(&format!("byte {at}")), "{err}");
        assert!(
            !out.is_empty() && good.starts_with(&out),
            "threads {t}: not the blocks before the failure"
        );
        // Blocks end at line ends and masking keeps every line end: what was written ends before the line that
        // holds the bad byte, whatever the block size.
        let lines = |b: &[u8]| b.iter().filter(|&&c| c == b'\n').count();
        assert!(
            lines(&out) <= lines(&long[..at]),
            "threads {t}: wrote past the failing block"
        );
    }
}

#[test]
fn a_reader_that_goes_away_ends_the_run() {
    // `maskgate mask < big | head -c 100`: the write fails (EPIPE) while input remains to be read; the run
    // must end, with an error, not wait for workers that stopped.
    let line = "instance i-0123456789abcdef0 in vpc-0a1b2c3d4e5f67890 says hello to everyone here\n";
    let input = line.repeat((12 << 20) / line.len());
    for t in ["1", "2"] {
        let (mut child, _writer) = spawn_fed(&["mask", "--threads", t], input.clone().into_bytes());
        let mut first = [0u8; 100];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        // stdout is closed here.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("threads {t}: maskgate mask still running after its reader went away");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert_eq!(status.code(), Some(1), "threads {t}: {err}");
        assert!(err.contains("stdout"), "threads {t}: {err}");
        assert!(first.starts_with(b"instance AWS_EC2_001 in AWS_VPC_001"));
    }
}

/// The deployment files (`Dockerfile`, `deploy/`): validated with real tools and run where they can be here.
/// `docker-compose config` (the compose file), kubernetes-validate (the manifests, against the Kubernetes
/// schemas), promtool (alert rules and the dashboard's PromQL), `maskgate check-config` (the shipped configs), and
/// the shipped gateway and sidecar configs run as processes with the compose set-up script and example app, whose
/// `/metrics` must export every metric the dashboard and the alert rules query. The tools come from
/// `scripts/setup-test-env.sh`; a missing tool skips loudly here and fails under CI (`CI=true`).
mod deploy {
    use std::collections::BTreeSet;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use maskgate_vault::testing::free_port;

    const BIN: &str = env!("CARGO_BIN_EXE_maskgate");

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    fn read(rel: &str) -> String {
        std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    fn ci() -> bool {
        std::env::var("CI").is_ok_and(|v| v == "true")
    }

    fn venv() -> PathBuf {
        std::env::var_os("MASKGATE_SDK_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join(".venv-sdk"))
    }

    /// A tool from the test venv's bin/ or the PATH; `None` (after a loud message) when missing, a panic under CI.
    fn tool(name: &str, test: &str) -> Option<PathBuf> {
        let in_venv = venv().join("bin").join(name);
        let found = if in_venv.is_file() {
            Some(in_venv)
        } else {
            std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|p| p.is_file()))
        };
        if found.is_none() {
            let msg = format!("{test}: `{name}` is not installed (scripts/setup-test-env.sh installs it)");
            if ci() {
                panic!("{msg}; under CI this is a failure");
            }
            eprintln!("\n!!!!!!!!!! SKIPPED {msg} !!!!!!!!!!\n");
        }
        found
    }

    fn run(cmd: &mut Command) -> (bool, String, String) {
        let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("maskgate-deploy-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// `text` with each `from` replaced by `to`; every `from` must occur (the shipped file changed otherwise).
    fn subst(text: &str, pairs: &[(&str, String)]) -> String {
        let mut t = text.to_string();
        for (from, to) in pairs {
            assert!(
                t.contains(from),
                "{from:?} not found: the shipped file changed, update this test"
            );
            t = t.replace(from, to);
        }
        t
    }

    #[test]
    fn dockerfile_is_multi_stage_non_root_with_iptables() {
        let d = read("Dockerfile");
        let froms: Vec<&str> = d.lines().filter(|l| l.starts_with("FROM ")).collect();
        assert_eq!(froms.len(), 2, "{froms:?}");
        assert!(froms[0].starts_with("FROM rust:1-bookworm AS build"), "{froms:?}");
        assert!(froms[1].starts_with("FROM debian:bookworm-slim"), "{froms:?}");
        assert!(d.contains("cargo build --release --locked -p maskgate"));
        assert!(d.contains("COPY --from=build /usr/local/bin/maskgate /usr/local/bin/maskgate"));
        let runtime = &d[d.find(froms[1]).unwrap()..];
        for pkg in ["iptables", "ca-certificates"] {
            assert!(runtime.contains(pkg), "runtime stage lacks {pkg}");
        }
        assert!(runtime.contains("--uid 1337"), "no 1337 user");
        let user = runtime.lines().rfind(|l| l.starts_with("USER ")).expect("USER");
        assert_eq!(user, "USER 1337:1337");
        assert!(runtime.contains("ENTRYPOINT [\"/usr/local/bin/maskgate\"]"));
        // The build context holds what the build copies and none of the big local directories.
        let ignore = read(".dockerignore");
        for must in ["target", ".venv-sdk", ".git"] {
            assert!(ignore.lines().any(|l| l.trim() == must), ".dockerignore lacks {must}");
        }
        for copied in ["Cargo.toml", "Cargo.lock", "crates"] {
            assert!(root().join(copied).exists());
            assert!(!ignore.lines().any(|l| l.trim() == copied), "{copied} is ignored");
        }
    }

    #[test]
    fn compose_file_is_valid() {
        let Some(dc) = tool("docker-compose", "compose_file_is_valid") else {
            return;
        };
        let file = root().join("deploy/compose/docker-compose.yml");
        let (ok, out, err) = run(Command::new(&dc).arg("-f").arg(&file).arg("config"));
        assert!(ok, "docker-compose config: {err}");
        let (ok, services, err) = run(Command::new(&dc).arg("-f").arg(&file).args(["config", "--services"]));
        assert!(ok, "{err}");
        let services: BTreeSet<&str> = services.lines().collect();
        for s in [
            "setup",
            "pod",
            "iptables-init",
            "sidecar",
            "app",
            "gateway",
            "redis",
            "mock-provider",
        ] {
            assert!(services.contains(s), "service {s} missing: {services:?}");
        }
        // App, sidecar and capture share one network namespace; the capture runs with NET_ADMIN.
        assert_eq!(out.matches("network_mode: service:pod").count(), 3, "{out}");
        assert!(out.contains("- NET_ADMIN"), "{out}");
        // The stand-in's flags are the ones the binary has.
        let (ok, help, err) = run(Command::new(BIN).args(["mock-provider", "--help"]));
        assert!(ok && help.contains("--listen"), "{help}{err}");
        assert!(out.contains("mock-provider"));
    }

    #[test]
    fn kubernetes_manifests_match_the_schemas() {
        let Some(kv) = tool("kubernetes-validate", "kubernetes_manifests_match_the_schemas") else {
            return;
        };
        let dir = root().join("deploy/kubernetes");
        let kustomization = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .filter(|p| !p.ends_with("kustomization.yaml"))
            .collect();
        files.sort();
        assert!(files.len() >= 5, "{files:?}");
        // Every manifest is in the kustomization, except the Secrets' example (made by hand with fresh values).
        for f in &files {
            let name = f.file_name().unwrap().to_str().unwrap();
            if name != "secrets.example.yaml" {
                assert!(
                    kustomization.contains(&format!("- {name}")),
                    "{name} not in kustomization.yaml"
                );
            }
        }
        for f in ["gateway.toml", "sidecar.toml"] {
            assert!(kustomization.contains(f) && dir.join(f).is_file(), "{f}");
        }
        let (ok, out, err) = run(Command::new(&kv).args(["--strict", "-k", "1.30.0"]).args(&files));
        assert!(ok, "kubernetes-validate:\n{out}\n{err}");
        for r in [
            "deployment/maskgate-gateway",
            "service/maskgate-gateway",
            "poddisruptionbudget/maskgate-gateway",
            "horizontalpodautoscaler/maskgate-gateway",
            "statefulset/maskgate-redis",
            "deployment/example-app",
            "networkpolicy/maskgate-gateway",
            "secret/maskgate-gateway",
        ] {
            assert!(
                out.contains(&format!("passed for resource {r} ")),
                "{r} not validated:\n{out}"
            );
        }
        // The validator does reject a wrong manifest (so that the check above means something).
        let bad = tmpdir("k8s-bad").join("bad.yaml");
        std::fs::write(
            &bad,
            std::fs::read_to_string(dir.join("gateway.yaml"))
                .unwrap()
                .replace("minAvailable: 1", "minAvailabel: 1"),
        )
        .unwrap();
        let (ok, out, err) = run(Command::new(&kv).args(["--strict", "-k", "1.30.0"]).arg(&bad));
        assert!(!ok, "a misspelt key passed:\n{out}{err}");
        // The app pod: capture as root with NET_ADMIN only, the sidecar as UID 1337 started before the app.
        let app = std::fs::read_to_string(dir.join("app.yaml")).unwrap();
        assert!(app.contains("args: [\"iptables\", \"install\", \"--drop-quic\"]"));
        assert!(app.contains("add: [NET_ADMIN]"));
        assert!(app.contains("restartPolicy: Always") && app.contains("runAsUser: 1337"));
    }

    #[test]
    fn shipped_configs_pass_check_config() {
        for f in ["deploy/compose/gateway.toml", "deploy/kubernetes/gateway.toml"] {
            let (ok, out, err) = run(Command::new(BIN).arg("check-config").arg(root().join(f)));
            assert!(ok, "{f}: {out}{err}");
            assert!(out.contains(": OK"), "{out}");
        }
        for f in ["deploy/compose/sidecar.toml", "deploy/kubernetes/sidecar.toml"] {
            if let Err(e) = maskgate_sidecar::config::Config::load(Some(&root().join(f))) {
                panic!("{f}: {e}");
            }
        }
        // check-config does refuse an unknown key (the check above is not vacuous).
        let bad = tmpdir("check-config").join("bad.toml");
        std::fs::write(
            &bad,
            read("deploy/compose/gateway.toml").replace("shutdown_grace", "shutdown_grac"),
        )
        .unwrap();
        let (ok, _, err) = run(Command::new(BIN).arg("check-config").arg(&bad));
        assert!(!ok && err.contains("shutdown_grac"), "{err}");
    }

    /// The PromQL expressions of the alert rules (`expr:` values, one line or a block) and of the dashboard.
    fn alert_exprs() -> Vec<String> {
        let text = read("deploy/monitoring/alerts.yml");
        let lines: Vec<&str> = text.lines().collect();
        let mut out = Vec::new();
        let mut i = 0;
        while i < lines.len() {
            let l = lines[i];
            let indent = l.len() - l.trim_start().len();
            if let Some(v) = l.trim_start().strip_prefix("expr:") {
                let v = v.trim();
                if v == "|" || v == ">" {
                    let mut e = String::new();
                    while i + 1 < lines.len()
                        && (lines[i + 1].trim().is_empty()
                            || lines[i + 1].len() - lines[i + 1].trim_start().len() > indent)
                    {
                        i += 1;
                        e.push_str(lines[i].trim());
                        e.push(' ');
                    }
                    out.push(e.trim().to_string());
                } else {
                    out.push(v.to_string());
                }
            }
            i += 1;
        }
        let alerts = lines.iter().filter(|l| l.trim_start().starts_with("- alert:")).count();
        assert_eq!(out.len(), alerts, "one expr per alert");
        out
    }

    fn dashboard_exprs() -> Vec<String> {
        let d: serde_json::Value = serde_json::from_str(&read("deploy/monitoring/grafana-dashboard.json")).unwrap();
        let mut out = Vec::new();
        let mut ids = BTreeSet::new();
        for p in d["panels"].as_array().expect("panels") {
            assert!(ids.insert(p["id"].as_u64().expect("panel id")), "duplicate panel id");
            assert!(p["gridPos"]["w"].as_u64().is_some(), "gridPos");
            if p["type"] == "row" {
                continue;
            }
            assert_eq!(p["datasource"]["uid"], "${datasource}");
            let targets = p["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{} has no query", p["title"]);
            for t in targets {
                out.push(t["expr"].as_str().expect("expr").to_string());
            }
        }
        let vars = d["templating"]["list"].as_array().unwrap();
        assert!(vars
            .iter()
            .any(|v| v["name"] == "datasource" && v["type"] == "datasource"));
        out
    }

    /// `maskgate_*` metric names in a PromQL expression.
    fn metric_names(expr: &str) -> BTreeSet<String> {
        let b = expr.as_bytes();
        let mut out = BTreeSet::new();
        let mut i = 0;
        while let Some(off) = expr[i..].find("maskgate_") {
            let s = i + off;
            let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
            let mut e = s;
            while e < b.len() && word(b[e]) {
                e += 1;
            }
            if s == 0 || !word(b[s - 1]) {
                out.insert(expr[s..e].to_string());
            }
            i = e;
        }
        out
    }

    #[test]
    fn alert_rules_and_dashboard_queries_are_valid_promql() {
        let Some(promtool) = tool("promtool", "alert_rules_and_dashboard_queries_are_valid_promql") else {
            return;
        };
        let rules = root().join("deploy/monitoring/alerts.yml");
        let (ok, out, err) = run(Command::new(&promtool).args(["check", "rules"]).arg(&rules));
        assert!(ok, "promtool check rules:\n{out}{err}");
        assert!(
            out.contains(&format!("SUCCESS: {} rules found", alert_exprs().len())),
            "{out}"
        );
        // The dashboard's queries as recording rules (Grafana's $__rate_interval as a fixed range).
        let mut file = String::from("groups:\n  - name: dashboard\n    rules:\n");
        let exprs = dashboard_exprs();
        for (i, e) in exprs.iter().enumerate() {
            let e = e.replace("$__rate_interval", "5m");
            assert!(!e.contains('$'), "unknown Grafana variable in {e}");
            file.push_str(&format!(
                "      - record: maskgate_dashboard:q{i}\n        expr: {}\n",
                serde_json::to_string(&e).unwrap()
            ));
        }
        let f = tmpdir("promql").join("dashboard-rules.yml");
        std::fs::write(&f, file).unwrap();
        let (ok, out, err) = run(Command::new(&promtool).args(["check", "rules"]).arg(&f));
        assert!(ok, "dashboard PromQL:\n{out}{err}");
        assert!(out.contains(&format!("SUCCESS: {} rules found", exprs.len())), "{out}");
        // And promtool does refuse a broken expression.
        std::fs::write(
            &f,
            "groups:\n  - name: x\n    rules:\n      - record: x:y\n        expr: sum(rate(maskgate_requests_total[5m])\n",
        )
        .unwrap();
        let (ok, _, _) = run(Command::new(&promtool).args(["check", "rules"]).arg(&f));
        assert!(!ok, "promtool accepted a broken expression");
    }

    struct Procs(Vec<Child>);
    impl Drop for Procs {
        fn drop(&mut self) {
            for c in &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// One HTTP/1.1 request (Connection: close): (status, body).
    fn http(port: u16, method: &str, path: &str, host: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text.split(' ').nth(1)?.parse().ok()?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Some((status, body))
    }

    fn wait_ready(port: u16, what: &str, log: &Path) {
        let t = Instant::now();
        while http(port, "GET", "/health/ready", "localhost").map(|r| r.0) != Some(200) {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "{what} not ready: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn spawn(dir: &Path, name: &str, args: &[&str], envs: &[(&str, &str)]) -> Child {
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        Command::new(BIN)
            .args(args)
            .envs(envs.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// Sample names of a Prometheus text exposition (`name{labels} value` / `name value`).
    fn exported(metrics: &str) -> BTreeSet<String> {
        metrics
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
            .collect()
    }

    /// The compose topology without containers: the shipped set-up script, gateway and sidecar configs (listen
    /// addresses and paths moved into a temporary directory), a real Redis, `maskgate mock-provider`, and the
    /// example app (official SDKs) through the sidecar as its HTTPS proxy. Then every metric the dashboard and
    /// the alert rules query must be in the gateway's or the sidecar's `/metrics`.
    #[test]
    fn dashboard_and_alerts_query_only_exported_metrics() {
        let python = venv().join("bin/python");
        if !python.is_file() {
            let msg = "no SDK venv (scripts/setup-test-env.sh)";
            assert!(!ci(), "{msg}");
            eprintln!("\n!!!!!!!!!! SKIPPED dashboard_and_alerts_query_only_exported_metrics: {msg} !!!!!!!!!!\n");
            return;
        }
        let Some(redis) = maskgate_vault::testing::RedisServer::start() else {
            return;
        };
        let dir = tmpdir("metrics");
        let bin_dir = Path::new(BIN).parent().unwrap();
        let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());

        // deploy/compose/setup.sh: CA, bundle and env.sh, vault key, sidecar token.
        let (ok, out, err) = run(Command::new("sh")
            .arg(root().join("deploy/compose/setup.sh"))
            .env("MASKGATE_SETUP_ROOT", &dir)
            .env("PATH", &path));
        assert!(ok, "setup.sh: {out}{err}");
        let run_dir = dir.join("run/maskgate");
        let key = std::fs::read_to_string(run_dir.join("gateway/vault.key")).unwrap();
        assert_eq!(key.len(), 64, "vault key: 64 hex characters");
        // Idempotent: a second run keeps the CA and the key.
        let ca = std::fs::read(run_dir.join("sidecar/ca.crt")).unwrap();
        let (ok, out, err) = run(Command::new("sh")
            .arg(root().join("deploy/compose/setup.sh"))
            .env("MASKGATE_SETUP_ROOT", &dir)
            .env("PATH", &path));
        assert!(ok, "setup.sh again: {out}{err}");
        assert_eq!(std::fs::read(run_dir.join("sidecar/ca.crt")).unwrap(), ca);
        assert_eq!(std::fs::read_to_string(run_dir.join("gateway/vault.key")).unwrap(), key);

        let (mock, proxy, admin, sc_listen, sc_admin) =
            (free_port(), free_port(), free_port(), free_port(), free_port());
        let gw_cfg = dir.join("gateway.toml");
        std::fs::write(
            &gw_cfg,
            subst(
                &read("deploy/compose/gateway.toml"),
                &[
                    ("listen = \"0.0.0.0:8000\"", format!("listen = \"127.0.0.1:{proxy}\"")),
                    (
                        "admin_listen = \"0.0.0.0:8001\"",
                        format!("admin_listen = \"127.0.0.1:{admin}\""),
                    ),
                    ("/run/maskgate/", format!("{}/", run_dir.display())),
                    ("redis://redis:6379/0", redis.url()),
                    ("http://mock-provider:9999", format!("http://127.0.0.1:{mock}")),
                ],
            ),
        )
        .unwrap();
        let sc_cfg = dir.join("sidecar.toml");
        std::fs::write(
            &sc_cfg,
            subst(
                &read("deploy/compose/sidecar.toml"),
                &[
                    (
                        "listen = \"0.0.0.0:15001\"",
                        format!("listen = \"127.0.0.1:{sc_listen}\""),
                    ),
                    (
                        "admin_listen = \"0.0.0.0:15000\"",
                        format!("admin_listen = \"127.0.0.1:{sc_admin}\""),
                    ),
                    ("http://gateway:8000", format!("http://127.0.0.1:{proxy}")),
                    ("/run/maskgate/", format!("{}/", run_dir.display())),
                ],
            ),
        )
        .unwrap();

        let mut procs = Procs(Vec::new());
        let mock_addr = format!("127.0.0.1:{mock}");
        procs
            .0
            .push(spawn(&dir, "mock", &["mock-provider", "--listen", &mock_addr], &[]));
        procs.0.push(spawn(
            &dir,
            "gateway",
            &["gateway", "--config", gw_cfg.to_str().unwrap()],
            &[
                ("ANTHROPIC_API_KEY", "test-anthropic-key"),
                ("OPENAI_API_KEY", "test-openai-key"),
                ("GEMINI_API_KEY", "test-gemini-key"),
            ],
        ));
        wait_ready(admin, "gateway", &dir.join("gateway.log"));
        procs.0.push(spawn(
            &dir,
            "sidecar",
            &["sidecar", "--config", sc_cfg.to_str().unwrap()],
            &[],
        ));
        wait_ready(sc_admin, "sidecar", &dir.join("sidecar.log"));
        let t = Instant::now();
        while TcpStream::connect(&mock_addr).is_err() {
            assert!(t.elapsed() < Duration::from_secs(30), "mock provider did not start");
            std::thread::sleep(Duration::from_millis(100));
        }

        // The example app, unchanged, trusting the CA through the variables of env.sh, via the sidecar.
        let env_sh = std::fs::read_to_string(run_dir.join("trust/env.sh")).unwrap();
        let mut app = Command::new(&python);
        app.arg(root().join("deploy/compose/app/app.py"));
        for (k, v) in env_sh
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
        {
            app.env(k, v);
        }
        assert!(env_sh.contains("SSL_CERT_FILE="), "{env_sh}");
        for v in [
            "ANTHROPIC_BASE_URL",
            "OPENAI_BASE_URL",
            "NO_PROXY",
            "no_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            app.env_remove(v);
        }
        app.env("HTTPS_PROXY", format!("http://127.0.0.1:{sc_listen}"));
        let (ok, out, err) = run(&mut app);
        assert!(
            ok && out.matches("OK ").count() == 3,
            "app.py: {out}\n{err}\nsidecar: {}\ngateway: {}",
            std::fs::read_to_string(dir.join("sidecar.log")).unwrap_or_default(),
            std::fs::read_to_string(dir.join("gateway.log")).unwrap_or_default()
        );

        // A refusal (host off the allowlist) and a configuration reload, so that those labelled series exist.
        let (status, _) = http(proxy, "GET", "/", "unlisted.example.com").expect("gateway answers");
        assert_eq!(status, 403);
        let (status, body) = http(admin, "POST", "/config/reload", "localhost").expect("admin answers");
        assert_eq!(status, 200, "{body}");

        let (status, gw_metrics) = http(admin, "GET", "/metrics", "localhost").unwrap();
        assert_eq!(status, 200);
        let (status, sc_metrics) = http(sc_admin, "GET", "/metrics", "localhost").unwrap();
        assert_eq!(status, 200);
        // The flow did go through masking and the sidecar.
        assert!(
            gw_metrics.contains("maskgate_entities_masked_total{kind=\"ec2_instance\"}"),
            "{gw_metrics}"
        );
        assert!(
            !sc_metrics.contains("maskgate_sidecar_requests_total 0\n"),
            "{sc_metrics}"
        );
        let mut have = exported(&gw_metrics);
        have.extend(exported(&sc_metrics));

        let mut queried = BTreeSet::new();
        for e in alert_exprs().iter().chain(dashboard_exprs().iter()) {
            queried.extend(metric_names(e));
        }
        let missing: Vec<&String> = queried.iter().filter(|m| !have.contains(*m)).collect();
        assert!(
            missing.is_empty(),
            "queried but not exported: {missing:?}\nexported: {have:?}"
        );
        // The dashboard covers what the issue asks for: traffic, overhead, masked entities by kind, unmask misses,
        // vault health, denied egress.
        let dash: BTreeSet<String> = dashboard_exprs().iter().flat_map(|e| metric_names(e)).collect();
        for m in [
            "maskgate_requests_total",
            "maskgate_gateway_overhead_seconds_bucket",
            "maskgate_entities_masked_total",
            "maskgate_unmask_misses_total",
            "maskgate_vault_operations_total",
            "maskgate_vault_duration_seconds_bucket",
            "maskgate_denied_total",
            "maskgate_sidecar_connections_total",
        ] {
            assert!(dash.contains(m), "the dashboard does not query {m}");
        }
        assert!(queried.len() >= 15, "{queried:?}");
        // The compose file's health checks (bash's /dev/tcp, the image has no curl) against the real processes: they
        // gate the start of the sidecar and the app. And they fail on a non-200 answer (the proxy port's 4xx).
        let compose = read("deploy/compose/docker-compose.yml");
        let checks: Vec<String> = compose
            .lines()
            .filter_map(|l| l.trim().strip_prefix("test: "))
            .filter(|l| l.contains("\"bash\""))
            .map(|l| {
                let v: Vec<String> = serde_json::from_str(l).expect("a flow sequence of plain strings");
                assert_eq!(v[..3], ["CMD", "bash", "-c"]);
                v[3].clone()
            })
            .collect();
        assert_eq!(checks.len(), 2, "gateway and sidecar health checks");
        for (from, port) in [("127.0.0.1/8001", admin), ("127.0.0.1/15000", sc_admin)] {
            let script = checks.iter().find(|c| c.contains(from)).expect(from);
            let (ok, out, err) = run(Command::new("bash")
                .arg("-c")
                .arg(script.replace(from, &format!("127.0.0.1/{port}"))));
            assert!(ok, "health check {from}: {out}{err}");
            let (ok, _, _) = run(Command::new("bash")
                .arg("-c")
                .arg(script.replace(from, &format!("127.0.0.1/{proxy}"))));
            assert!(!ok, "health check {from} passed on a non-200 answer");
        }
        // No original in a metric.
        for o in ["i-0123456789abcdef0", "vpc-0a1b2c3d4e5f67890", "123456789012"] {
            assert!(!gw_metrics.contains(o) && !sc_metrics.contains(o), "{o} in /metrics");
        }
        drop(procs);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A gateway started for the SIGTERM tests: (process, proxy port, mock process).
    fn gateway_for_shutdown(dir: &Path, grace: &str) -> (Procs, u16) {
        let (mock, proxy, admin) = (free_port(), free_port(), free_port());
        let cfg = dir.join("gateway.toml");
        std::fs::write(
            &cfg,
            format!(
                "[gateway]\nlisten = \"127.0.0.1:{proxy}\"\nadmin_listen = \"127.0.0.1:{admin}\"\n\
                 shutdown_grace = \"{grace}\"\n\n[[routes]]\nhost = \"api.anthropic.com\"\n\
                 path_prefix = \"/anthropic\"\nupstream = \"http://127.0.0.1:{mock}\"\nkeep_client_credentials = true\n"
            ),
        )
        .unwrap();
        let mock_addr = format!("127.0.0.1:{mock}");
        let mut procs = Procs(Vec::new());
        procs
            .0
            .push(spawn(dir, "mock", &["mock-provider", "--listen", &mock_addr], &[]));
        procs.0.push(spawn(
            dir,
            "gateway",
            &["gateway", "--config", cfg.to_str().unwrap()],
            &[],
        ));
        wait_ready(admin, "gateway", &dir.join("gateway.log"));
        let t = Instant::now();
        while TcpStream::connect(&mock_addr).is_err() {
            assert!(t.elapsed() < Duration::from_secs(30), "mock provider did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        (procs, proxy)
    }

    /// Starts a streamed Anthropic request whose events come `delay_ms` apart; returns once the response head
    /// has arrived, with what was read so far.
    fn start_stream(proxy: u16, delay_ms: u64) -> (TcpStream, Vec<u8>) {
        let body = serde_json::json!({"model": "m", "max_tokens": 50, "stream": true, "messages": [
            {"role": "user", "content": "Why is i-0123456789abcdef0 in vpc-0a1b2c3d4e5f67890 down?"}]})
        .to_string();
        let mut s = TcpStream::connect(("127.0.0.1", proxy)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "POST /anthropic/v1/messages HTTP/1.1\r\nHost: gw\r\ncontent-type: application/json\r\n\
             x-mock-chunk: 10000\r\nx-mock-delay-ms: {delay_ms}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed before the response head");
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got));
        (s, got)
    }

    fn sigterm(c: &Child) {
        // SAFETY: signalling our own child process.
        assert_eq!(unsafe { libc::kill(c.id() as i32, libc::SIGTERM) }, 0);
    }

    fn wait_exit(c: &mut Child, within: Duration) -> std::process::ExitStatus {
        let t = Instant::now();
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            assert!(t.elapsed() < within, "the gateway did not exit within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What README "Upgrading without dropped streams" promises, on the real process: on SIGTERM the gateway
    /// stops accepting at once, lets the stream in flight finish (unmasked, whole), and exits 0.
    #[test]
    fn gateway_sigterm_drains_streams_then_exits() {
        let dir = tmpdir("sigterm-drain");
        let (mut procs, proxy) = gateway_for_shutdown(&dir, "30s");
        let (mut s, mut got) = start_stream(proxy, 300);
        let t = Instant::now();
        sigterm(&procs.0[1]);
        // New connections are refused while the stream goes on.
        let t2 = Instant::now();
        while TcpStream::connect(("127.0.0.1", proxy)).is_ok() {
            assert!(t2.elapsed() < Duration::from_secs(5), "still accepting after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        s.read_to_end(&mut got).unwrap();
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.contains("event: message_stop") && text.ends_with("0\r\n\r\n"),
            "cut: {text}"
        );
        assert!(
            text.contains("i-0123456789abcdef0") && text.contains("vpc-0a1b2c3d4e5f67890"),
            "{text}"
        );
        assert!(!text.contains("AWS_EC2_"), "{text}");
        assert!(
            t.elapsed() >= Duration::from_millis(900),
            "the stream did not outlive SIGTERM"
        );
        let st = wait_exit(&mut procs.0[1], Duration::from_secs(10));
        assert!(
            st.success(),
            "exit {st:?}: {}",
            std::fs::read_to_string(dir.join("gateway.log")).unwrap()
        );
    }

    /// A stream longer than `shutdown_grace` is cut at the deadline and the gateway still exits.
    #[test]
    fn gateway_sigterm_cuts_streams_after_the_grace() {
        let dir = tmpdir("sigterm-cut");
        let (mut procs, proxy) = gateway_for_shutdown(&dir, "1s");
        let (mut s, mut got) = start_stream(proxy, 2000);
        let t = Instant::now();
        sigterm(&procs.0[1]);
        let st = wait_exit(&mut procs.0[1], Duration::from_secs(8));
        assert!(
            t.elapsed() >= Duration::from_millis(900),
            "exited before the grace period"
        );
        assert!(st.success(), "exit {st:?}");
        let _ = s.read_to_end(&mut got);
        let text = String::from_utf8_lossy(&got);
        assert!(!text.contains("event: message_stop"), "the stream was not cut: {text}");
    }
}

/// Sends `CONNECT host:443` to the sidecar; returns its status line.
async fn connect_status(sidecar: std::net::SocketAddr, host: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(sidecar).await.unwrap();
    s.write_all(format!("CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

/// The sidecar's intercept list from a running gateway's admin API (`gateway_admin`, with its admin token): the
/// gateway's route hosts are intercepted, others follow the egress policy; a wrong token stops the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_intercept_list_from_the_gateway_admin_api() {
    std::env::set_var("MG_CLI_ADMIN_TOKEN", "admin-token-for-the-cli-test");
    let gw_cfg = maskgate_gateway::Config::from_toml(
        r#"
[gateway]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
admin_token_env = "MG_CLI_ADMIN_TOKEN"
[[routes]]
host = "llm.corp.test"
upstream = "https://llm.corp.test"
[[routes]]
host = "api.openai.com"
upstream = "https://api.openai.com"
"#,
    )
    .unwrap();
    let gw = maskgate_gateway::start(gw_cfg, None).await.unwrap();
    let ca = tmp("admin-ca");
    let _ = std::fs::remove_dir_all(&ca);
    maskgate_sidecar::ca::init(&ca, false).unwrap();
    let sidecar_cfg = |token_env: &str| {
        maskgate_sidecar::Config::from_toml(&format!(
            "[sidecar]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nca_cert = \"{c}/ca.crt\"\nca_key = \"{c}/ca.key\"\n\
             gateway = \"http://{gw}\"\ngateway_admin = \"http://{admin}\"\ngateway_admin_token_env = \"{token_env}\"\n\
             first_byte_timeout_secs = 2\n",
            c = ca.display(),
            gw = gw.proxy_addr,
            admin = gw.admin_addr
        ))
        .unwrap()
    };
    let sc = maskgate_sidecar::start(sidecar_cfg("MG_CLI_ADMIN_TOKEN"))
        .await
        .unwrap();
    assert!(connect_status(sc.listen_addr, "llm.corp.test").await.contains(" 200 "));
    assert!(connect_status(sc.listen_addr, "api.openai.com").await.contains(" 200 "));
    // Not a gateway route (though on the sidecar's built-in default list): default deny.
    assert!(connect_status(sc.listen_addr, "api.anthropic.com")
        .await
        .contains(" 403 "));
    sc.shutdown().await;
    std::env::set_var("MG_CLI_WRONG_TOKEN", "wrong");
    let e = match maskgate_sidecar::start(sidecar_cfg("MG_CLI_WRONG_TOKEN")).await {
        Ok(_) => panic!("started with a wrong admin token"),
        Err(e) => e,
    };
    assert!(e.contains("sidecar.gateway_admin") && e.contains("401"), "{e}");
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&ca);
}

#[test]
fn a_piped_stdin_gets_a_wider_pipe() {
    // From a pipe, `mask` asks for a 1 MiB pipe buffer so that the producer writes ahead (fewer wake-ups); the
    // writer's end shows it once the run has started.
    use std::os::fd::AsRawFd;
    let mut child = Command::new(env!("CARGO_BIN_EXE_maskgate"))
        .args(["mask"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("maskgate runs");
    let input = child.stdin.take().unwrap();
    let want: i32 = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .map_or(1 << 20, |s| s.trim().parse().unwrap())
        .min(1 << 20);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let size = loop {
        // SAFETY: F_GETPIPE_SZ on a descriptor this test holds.
        let size = unsafe { libc::fcntl(input.as_raw_fd(), libc::F_GETPIPE_SZ) };
        if size >= want || std::time::Instant::now() > deadline {
            break size;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    drop(input);
    let _ = child.wait();
    assert!(size >= want, "pipe buffer {size} bytes");
}
