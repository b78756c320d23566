//! The offline CLI, run as a process: `maskgate mask` / `unmask` / `kinds`.

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

#[test]
fn threads_do_not_change_the_output() {
    // 3.5 MiB of lines (blocks are 1 MiB) in which values recur across blocks, also without their context.
    let mut input = String::new();
    let mut n = 0u64;
    while input.len() < 7 << 19 {
        input.push_str(&format!(
            "line {n}: account 1234567{:05} runs i-{:08x} in subnet-{:08x}; see 1234567{:05} too\n",
            n % 977,
            n % 1013,
            n % 89,
            n % 977
        ));
        n += 1;
    }
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
}
