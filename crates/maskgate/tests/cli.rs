//! The offline CLI, run as a process: `maskgate mask` / `unmask` / `kinds`; and the sidecar reading its intercept
//! list from a gateway started in-process.

use std::io::Write;
use std::process::{Command, Stdio};

fn maskgate(args: &[&str], stdin: &[u8]) -> (i32, Vec<u8>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_maskgate"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("maskgate runs");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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
fn kinds_lists_the_catalogue() {
    let (code, out, _) = maskgate(&["kinds"], b"");
    assert_eq!(code, 0);
    let out = String::from_utf8(out).unwrap();
    assert!(out.lines().count() >= 51);
    assert!(out.contains("ec2_instance") && out.contains("AWS_EC2"));
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
