//! The official Python SDKs (`anthropic`, `openai`) in base-URL mode against the gateway and the mock provider.
//! Needs the venv made by `scripts/setup-test-env.sh` (at `<repo>/.venv-sdk` or `$MASKGATE_SDK_VENV`); skipped
//! with a message when it is absent locally. Under CI (`CI=true`) a missing venv is a failure.

use std::path::PathBuf;

use crate::common::*;

fn venv_python() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = std::env::var_os("MASKGATE_SDK_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv-sdk"));
    let py = venv.join("bin/python");
    py.exists().then_some(py)
}

#[tokio::test]
async fn official_python_sdks_in_base_url_mode() {
    let Some(py) = venv_python() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI: the SDK venv is missing; run scripts/setup-test-env.sh first");
        }
        eprintln!("SKIPPED official_python_sdks_in_base_url_mode: no SDK venv (run scripts/setup-test-env.sh)");
        return;
    };
    let env = env().await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/sdk_check.py");
    let mut cmd = std::process::Command::new(py);
    cmd.arg(script)
        .env("GATEWAY", format!("http://{}", env.gw.proxy_addr))
        .env("SDK_TEXT", sample_text())
        .env("SDK_ORIGINALS", serde_json::to_string(&ORIGINALS).unwrap())
        .env("CLIENT_KEY", CLIENT_KEY)
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_BASE_URL")
        .env_remove("OPENAI_BASE_URL");
    // The gateway runs on this test's runtime: wait for python off the runtime thread.
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "SDK script failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("SDK OK"), "{stdout}");
    eprintln!("{}", stdout.trim());
    // What the provider received: placeholders only, valid JSON, the route's key, never the client's.
    let records = env.mock.records();
    assert_eq!(records.len(), 7, "one provider request per SDK call");
    for rec in &records {
        assert_masked(rec);
        assert!(rec.json().is_object(), "provider got invalid JSON: {}", rec.body_str());
        assert!(
            !format!("{:?}", rec.headers).contains(CLIENT_KEY),
            "client key forwarded"
        );
        if rec.path == "/v1/messages" {
            assert_eq!(rec.headers["x-api-key"], ANTHROPIC_KEY);
        } else {
            assert_eq!(rec.headers["authorization"], format!("Bearer {OPENAI_KEY}").as_str());
        }
    }
    assert_no_original("log", &logs());
}
