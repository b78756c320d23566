//! Admin API, metrics, access logs, reload.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn admin_endpoints_metrics_and_logs_hold_no_original() {
    let env = env().await;
    let body = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": sample_text()}]});
    let r = env
        .post_json("/anthropic/v1/messages", &[("x-request-id", "admin-test-1")], &body)
        .await;
    assert_eq!(r.status, 200);
    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    let r = env
        .post_json("/anthropic/v1/messages", &[("x-request-id", "admin-test-2")], &sbody)
        .await;
    assert_eq!(r.status, 200);
    // A path and a host with identifiers in them are redacted in the log.
    env.post_json(
        &format!("/v1/{}", ORIGINALS[0]),
        &[("x-original-host", "ec2.i-0123456789abcdef0.test")],
        &body,
    )
    .await;

    assert_eq!(env.get(&env.admin("/health/live"), &[]).await.status, 200);
    let ready = env.get(&env.admin("/health/ready"), &[]).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["vault"], "embedded");
    let status = env.get(&env.admin("/status"), &[]).await.json();
    assert_eq!(status["routes"].as_array().unwrap().len(), 3);

    let metrics = env.get(&env.admin("/metrics"), &[]).await.text();
    for m in [
        "maskgate_requests_total{host=\"api.anthropic.com\",status=\"200\"} 2",
        "maskgate_entities_masked_total{kind=\"ec2_instance\"}",
        "maskgate_gateway_overhead_seconds_bucket",
        "maskgate_request_duration_seconds_bucket",
        "maskgate_vault_operations_total{op=\"assign\",result=\"ok\"}",
        "maskgate_vault_duration_seconds_bucket",
        "maskgate_entities_unmasked_total",
        "maskgate_denied_total{code=\"UNAUTHORIZED_HOST\"} 1",
    ] {
        assert!(metrics.contains(m), "missing {m} in\n{metrics}");
    }
    assert_no_original("metrics", &metrics);

    let cfg = env.get(&env.admin("/config"), &[]).await;
    assert_eq!(cfg.status, 200);
    let t = cfg.text();
    assert!(t.contains("MG_TEST_ANTHROPIC_KEY") && t.contains("<redacted>"), "{t}");
    assert!(!t.contains(ANTHROPIC_KEY) && !t.contains(OPENAI_KEY), "{t}");

    let nf = env.get(&env.admin("/nope"), &[]).await;
    assert_eq!(nf.status, 404);
    assert_eq!(nf.json()["code"], "NOT_FOUND");

    // Access log lines: one per request, with the fields, and no original anywhere in the log.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let logs = logs();
    let line = logs
        .lines()
        .find(|l| l.contains("admin-test-1"))
        .expect("access log line");
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let f = &v["fields"];
    for k in [
        "tenant",
        "host",
        "method",
        "path",
        "status",
        "bytes_in",
        "bytes_out",
        "duration_ms",
        "upstream_ms",
        "masked",
    ] {
        assert!(!f[k].is_null(), "{k} missing in {line}");
    }
    assert_eq!(f["tenant"], "default");
    assert_eq!(f["status"], 200);
    assert!(f["masked"].as_str().unwrap().contains("\"ec2_instance\":"), "{line}");
    let line2 = logs
        .lines()
        .find(|l| l.contains("admin-test-2"))
        .expect("streamed log line");
    assert!(line2.contains("\"streamed\":true"), "{line2}");
    assert!(logs.contains("[AWS_EC2]"), "the identifier in the path was redacted");
    assert_no_original("log", &logs);
}

#[tokio::test]
async fn reload_and_admin_token() {
    init();
    std::env::set_var("MG_TEST_ADMIN_TOKEN", "admin-secret");
    let mock = MockProvider::start().await.unwrap();
    let dir = std::env::temp_dir().join(format!("maskgate-gw-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gw.toml");
    let base = config_toml(mock.addr.port(), "admin_token_env = \"MG_TEST_ADMIN_TOKEN\"", "");
    std::fs::write(&path, &base).unwrap();
    let cfg = maskgate_gateway::Config::load(&path).unwrap();
    let gw = maskgate_gateway::start(cfg, Some(path.clone())).await.unwrap();
    let env = Env {
        gw,
        mock,
        client: client(),
    };
    let auth = [("authorization", "Bearer admin-secret")];
    assert_eq!(env.get(&env.admin("/status"), &[]).await.status, 401);
    assert_eq!(
        env.get(&env.admin("/status"), &[("authorization", "Bearer nope")])
            .await
            .status,
        401
    );
    assert_eq!(env.get(&env.admin("/status"), &auth).await.status, 200);
    assert_eq!(
        env.get(&env.admin("/health/ready"), &[]).await.status,
        200,
        "probes stay open"
    );

    let body = json!({"messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(
        env.post_json("/v1/messages", &[("x-original-host", "extra.test")], &body)
            .await
            .status,
        403
    );
    // Add a route and reload.
    let extra = format!(
        "[[routes]]\nhost = \"extra.test\"\nupstream = \"http://extra.test\"\nconnect_address = \"127.0.0.1:{}\"\n",
        env.mock.addr.port()
    );
    std::fs::write(
        &path,
        config_toml(
            env.mock.addr.port(),
            "admin_token_env = \"MG_TEST_ADMIN_TOKEN\"",
            &extra,
        ),
    )
    .unwrap();
    let post = |headers: &[(&str, &str)]| {
        let mut b = http::Request::post(env.admin("/config/reload"));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        env.send(b.body(http_body_util::Full::new(bytes::Bytes::new())).unwrap())
    };
    assert_eq!(post(&[]).await.status, 401);
    let r = post(&auth).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        env.post_json("/v1/messages", &[("x-original-host", "extra.test")], &body)
            .await
            .status,
        200
    );
    // A broken file is refused and the previous config stays.
    std::fs::write(&path, base.replace("[gateway]", "[gateway]\nbogus_key = 1")).unwrap();
    let r = post(&auth).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "CONFIG_INVALID");
    assert!(r.json()["message"].as_str().unwrap().contains("bogus_key"));
    assert_eq!(
        env.post_json("/v1/messages", &[("x-original-host", "extra.test")], &body)
            .await
            .status,
        200
    );
}
