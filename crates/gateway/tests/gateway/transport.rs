//! Transport: TLS upstream with a test CA over h2, client gone mid-stream, upstream gone mid-stream, timeouts,
//! hop-by-hop headers, request ids.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

fn stream_msg() -> serde_json::Value {
    json!({"model": "m", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": sample_text()}]})
}

#[tokio::test]
async fn tls_upstream_with_test_ca_over_h2() {
    init();
    // A CA and a leaf for the upstream host.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "maskgate test CA");
    let ca = ca_params.clone().self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf_params = rcgen::CertificateParams::new(vec!["llm.test".to_string()]).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let mock = MockProvider::start_tls((
        vec![leaf.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    ))
    .await
    .unwrap();
    let dir = std::env::temp_dir().join(format!("maskgate-gw-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let toml = format!(
        r#"
[gateway]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
upstream_ca_file = "{}"
[[routes]]
host = "llm.test"
upstream = "https://llm.test"
connect_address = "127.0.0.1:{}"
[routes.credential]
header = "x-api-key"
env = "MG_TEST_ANTHROPIC_KEY"
"#,
        ca_file.display(),
        mock.addr.port()
    );
    let gw = maskgate_gateway::start(maskgate_gateway::Config::from_toml(&toml).unwrap(), None)
        .await
        .unwrap();
    let env = Env {
        gw,
        mock,
        client: client(),
    };
    for stream in [false, true] {
        let mut body = stream_msg();
        body["stream"] = json!(stream);
        let r = env
            .post_json(
                "/v1/messages",
                &[("x-original-host", "llm.test"), ("x-mock-chunk", "3")],
                &body,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let rec = env.last();
        assert_eq!(rec.version, http::Version::HTTP_2, "ALPN chose h2");
        assert_masked(&rec);
        assert_eq!(rec.headers["x-api-key"], ANTHROPIC_KEY);
        let text = if stream { stream_text(&r.text()) } else { r.text() };
        assert_all_originals("TLS answer", &text);
    }
    // Without the CA the upstream is not trusted.
    let toml_no_ca = toml.replace(&format!("upstream_ca_file = \"{}\"", ca_file.display()), "");
    let gw2 = maskgate_gateway::start(maskgate_gateway::Config::from_toml(&toml_no_ca).unwrap(), None)
        .await
        .unwrap();
    let c = client();
    let r = c
        .request(
            http::Request::post(format!("http://{}/v1/messages", gw2.proxy_addr))
                .header("x-original-host", "llm.test")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(stream_msg().to_string())))
                .unwrap(),
        )
        .await
        .unwrap();
    let r = collect(r).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["code"], "UPSTREAM_UNREACHABLE");
}

#[tokio::test]
async fn client_gone_mid_stream_cancels_upstream() {
    let env = env().await;
    let req = http::Request::post(env.url("/anthropic/v1/messages"))
        .header("content-type", "application/json")
        .header("x-mock-delay-ms", "30")
        .header("x-mock-chunk", "1")
        .body(Full::new(Bytes::from(stream_msg().to_string())))
        .unwrap();
    let r = env.client.request(req).await.unwrap();
    assert_eq!(r.status(), 200);
    let mut body = r.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    drop(body);
    let t = std::time::Instant::now();
    while env.mock.state.cancelled.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the upstream stream was not cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(env.mock.state.completed.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn client_gone_while_waiting_for_the_upstream() {
    let env = env().await;
    let req = http::Request::post(env.url("/anthropic/v1/messages"))
        .header("content-type", "application/json")
        .header("x-mock-sleep-ms", "3000")
        .header("x-request-id", "gone-before-head")
        .body(Full::new(Bytes::from(stream_msg().to_string())))
        .unwrap();
    let _ = tokio::time::timeout(Duration::from_millis(300), env.client.request(req)).await;
    let t = std::time::Instant::now();
    loop {
        let logs = logs();
        if let Some(line) = logs.lines().find(|l| l.contains("gone-before-head")) {
            assert!(line.contains("\"outcome\":\"client_gone\""), "{line}");
            assert!(line.contains("\"status\":499"), "{line}");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "the request was not cancelled when the client left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn shutdown_drains_in_flight_streams() {
    let env = env().await;
    let req = http::Request::post(env.url("/anthropic/v1/messages"))
        .header("content-type", "application/json")
        .header("x-mock-delay-ms", "10")
        .header("x-mock-chunk", "8")
        .body(Full::new(Bytes::from(stream_msg().to_string())))
        .unwrap();
    let r = env.client.request(req).await.unwrap();
    assert_eq!(r.status(), 200);
    let Env { gw, mock, client } = env;
    let addr = gw.proxy_addr;
    let shutdown = tokio::spawn(gw.shutdown());
    // The stream in flight completes, whole and unmasked ...
    let body = tokio::time::timeout(Duration::from_secs(10), r.into_body().collect())
        .await
        .unwrap()
        .expect("the stream finished cleanly")
        .to_bytes();
    assert_all_originals("drained stream", &stream_text(&String::from_utf8_lossy(&body)));
    tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .unwrap()
        .unwrap();
    // ... and no new connection is accepted.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    drop((mock, client));
}

#[tokio::test]
async fn upstream_gone_mid_stream_aborts_the_response() {
    let env = env().await;
    let req = http::Request::post(env.url("/anthropic/v1/messages"))
        .header("content-type", "application/json")
        .header("x-mock-break-after", "5")
        .body(Full::new(Bytes::from(stream_msg().to_string())))
        .unwrap();
    let r = env.client.request(req).await.unwrap();
    assert_eq!(r.status(), 200);
    let res = tokio::time::timeout(Duration::from_secs(10), r.into_body().collect())
        .await
        .expect("ended in time");
    assert!(res.is_err(), "the client must see a broken stream, not a clean end");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(logs().contains("upstream_error"));
}

#[tokio::test]
async fn idle_upstream_stream_times_out() {
    let env = env_with("idle_timeout = \"300ms\"", "").await;
    let req = http::Request::post(env.url("/anthropic/v1/messages"))
        .header("content-type", "application/json")
        .header("x-mock-delay-ms", "2000")
        .body(Full::new(Bytes::from(stream_msg().to_string())))
        .unwrap();
    let t = std::time::Instant::now();
    let r = env.client.request(req).await.unwrap();
    let res = tokio::time::timeout(Duration::from_secs(10), r.into_body().collect())
        .await
        .unwrap();
    assert!(res.is_err());
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn slow_client_body_times_out() {
    let env = env_with("client_body_timeout = \"300ms\"", "").await;
    let mut s = tokio::net::TcpStream::connect(env.gw.proxy_addr).await.unwrap();
    s.write_all(b"POST /anthropic/v1/messages HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"messages\":")
        .await
        .unwrap();
    let mut out = Vec::new();
    let t = std::time::Instant::now();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    if out.windows(4).any(|w| w == b"\r\n\r\n") && out.ends_with(b"}") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    assert!(out.contains("REQUEST_TIMEOUT"), "{out}");
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(env.mock.records().is_empty());
}

#[tokio::test]
async fn headers_hop_by_hop_and_request_id() {
    let env = env().await;
    let r = env
        .post_json(
            "/anthropic/v1/messages",
            &[
                ("connection", "keep-alive, x-hop"),
                ("x-hop", "1"),
                ("keep-alive", "timeout=5"),
                ("proxy-authorization", "Basic abc"),
                ("x-request-id", "req-12345"),
                ("anthropic-beta", "tools-2024"),
                ("authorization", "Bearer client"),
            ],
            &stream_msg(),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["x-request-id"], "req-12345");
    let rec = env.last();
    for h in [
        "x-hop",
        "keep-alive",
        "proxy-authorization",
        "authorization",
        "connection",
    ] {
        assert!(rec.headers.get(h).is_none(), "{h} forwarded");
    }
    assert_eq!(rec.headers["anthropic-beta"], "tools-2024");
    assert_eq!(rec.headers["x-request-id"], "req-12345");
    assert!(logs().contains("req-12345"));
    // Generated when absent.
    let r = env.post_json("/anthropic/v1/messages", &[], &stream_msg()).await;
    assert_eq!(r.headers["x-request-id"].len(), 32);
}

/// `maskgate demo` runs offline and checks itself (it fails when the provider saw an original or the app missed
/// one).
#[test]
fn demo_runs_offline() {
    maskgate_gateway::demo::run().expect("demo succeeds");
}

/// Bodies large enough to take the off-worker path (`proxy.rs::cpu_bound`: `block_in_place`, which only the
/// multi-threaded runtime allows; the gateway runs on one), gzip-encoded both ways, buffered and streamed, with
/// small requests beside them: what the provider received is masked, every copy, and the answers come back
/// restored. That the work leaves the worker is a matter of latency, shown by `bench/mixed-latency.sh`, not
/// here. On a current-thread runtime (`block_in_place` would panic there) the same work runs inline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_round_trip_on_the_multi_threaded_runtime() {
    large_bodies_round_trip().await;
}

#[tokio::test]
async fn large_bodies_round_trip_on_a_current_thread_runtime() {
    large_bodies_round_trip().await;
}

async fn large_bodies_round_trip() {
    use std::io::Write;
    init();
    let env = std::sync::Arc::new(env().await);
    let big = vec![sample_text(); 400].join(" ");
    assert!(big.len() > 64 * 1024);
    let small = tokio::spawn({
        let env = env.clone();
        async move {
            for _ in 0..20 {
                let r = env
                    .post_json(
                        "/anthropic/v1/messages",
                        &[("x-api-key", CLIENT_KEY)],
                        &json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": sample_text()}]}),
                    )
                    .await;
                assert_eq!(r.status, 200, "{}", r.text());
                assert_all_originals("small answer", &r.text());
            }
        }
    });
    for stream in [false, true] {
        let body =
            json!({"model": "m", "max_tokens": 5, "stream": stream, "messages": [{"role": "user", "content": big}]});
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(body.to_string().as_bytes()).unwrap();
        let req = http::Request::post(env.url("/anthropic/v1/messages"))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .header("x-api-key", CLIENT_KEY)
            .header("x-mock-encoding", "gzip")
            .header("x-mock-chunk", "4096")
            .body(Full::new(Bytes::from(gz.finish().unwrap())))
            .unwrap();
        let r = env.send(req).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let text = if stream {
            stream_text(&r.text())
        } else {
            r.json()["content"][0]["text"].as_str().unwrap().to_string()
        };
        assert_eq!(
            text,
            format!("I looked at: {big}"),
            "stream={stream}: the answer quotes the request's text, restored"
        );
    }
    small.await.unwrap();
    let records = env.mock.records();
    assert_eq!(records.len(), 22);
    for rec in &records {
        assert_masked(rec);
    }
    let large: Vec<_> = records.iter().filter(|r| r.body.len() > 32 * 1024).collect();
    assert_eq!(large.len(), 2);
    for rec in large {
        assert_eq!(rec.body_str().matches("AWS_EC2_").count(), 400, "every copy masked");
    }
}
