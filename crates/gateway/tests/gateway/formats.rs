//! Each provider format, streamed and not: the provider sees placeholders only, the client gets originals back in
//! text and tool calls, the route's key is injected and the client's is not forwarded.

use serde_json::json;

use crate::common::*;

fn anthropic_body(stream: bool) -> serde_json::Value {
    json!({
        "model": "claude-test",
        "max_tokens": 100,
        "stream": stream,
        "system": format!("You operate {}.", ORIGINALS[0]),
        "tools": [{"name": "lookup", "description": "Look up a resource", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": sample_text()}]}]
    })
}

#[tokio::test]
async fn anthropic_messages_whole_and_streamed() {
    let env = env().await;
    for chunk in ["3", "1", "7"] {
        for stream in [false, true] {
            let r = env
                .post_json(
                    "/anthropic/v1/messages",
                    &[
                        ("x-api-key", CLIENT_KEY),
                        ("anthropic-version", "2023-06-01"),
                        ("x-mock-chunk", chunk),
                    ],
                    &anthropic_body(stream),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text());
            let rec = env.last();
            assert_eq!(rec.path, "/v1/messages");
            assert_masked(&rec);
            assert_eq!(rec.json()["model"], "claude-test");
            assert_eq!(rec.headers["x-api-key"], ANTHROPIC_KEY);
            assert!(!format!("{:?}", rec.headers).contains(CLIENT_KEY));
            if stream {
                assert!(r.headers["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/event-stream"));
                assert!(r.headers.get("content-length").is_none());
                let text = stream_text(&r.text());
                assert_all_originals("streamed answer", &text);
            } else {
                assert_eq!(r.headers["content-length"], r.body.len().to_string().as_str());
                let v = r.json();
                assert_all_originals("answer text", v["content"][0]["text"].as_str().unwrap());
                let args = v["content"][1]["input"]["target"].as_str().unwrap();
                assert_all_originals("tool input", args);
            }
        }
    }
    assert_no_original("log", &logs());
}

#[tokio::test]
async fn openai_chat_whole_and_streamed() {
    let env = env().await;
    for stream in [false, true] {
        let body = json!({
            "model": "gpt-test",
            "stream": stream,
            "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
            "messages": [
                {"role": "system", "content": "You are an AWS assistant."},
                {"role": "user", "content": sample_text()}
            ]
        });
        let r = env
            .post_json(
                "/openai/v1/chat/completions?api-version=1",
                &[
                    ("authorization", &format!("Bearer {CLIENT_KEY}")),
                    ("x-mock-chunk", "2"),
                ],
                &body,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let rec = env.last();
        assert_eq!(rec.path, "/v1/chat/completions");
        assert_eq!(rec.query.as_deref(), Some("api-version=1"));
        assert_masked(&rec);
        assert_eq!(rec.headers["authorization"], format!("Bearer {OPENAI_KEY}").as_str());
        if stream {
            let text = stream_text(&r.text());
            assert_all_originals("streamed chat", &text);
            assert!(r.text().trim_end().ends_with("data: [DONE]"));
        } else {
            let v = r.json();
            assert_all_originals("chat", v["choices"][0]["message"]["content"].as_str().unwrap());
            let args = v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap();
            let args: serde_json::Value = serde_json::from_str(args).expect("arguments stay valid JSON");
            assert_all_originals("tool arguments", args["target"].as_str().unwrap());
        }
    }
}

#[tokio::test]
async fn openai_responses_whole_and_streamed() {
    let env = env().await;
    for stream in [false, true] {
        let body = json!({"model": "gpt-test", "stream": stream, "input": sample_text(),
            "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]});
        let r = env
            .post_json(
                "/openai/v1/responses",
                &[("api-key", CLIENT_KEY), ("x-mock-chunk", "5")],
                &body,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let rec = env.last();
        assert_eq!(rec.path, "/v1/responses");
        assert_masked(&rec);
        assert!(rec.headers.get("api-key").is_none(), "client api-key forwarded");
        if stream {
            assert_all_originals("streamed responses", &stream_text(&r.text()));
            // The `.done` and `response.completed` events carry the whole text: unmasked too.
            let body = r.text();
            let done = body
                .lines()
                .find(|l| l.starts_with("data:") && l.contains("response.output_text.done"))
                .unwrap();
            assert_all_originals("output_text.done", done);
            let completed = body
                .lines()
                .rfind(|l| l.starts_with("data:") && l.contains("response.completed"))
                .unwrap();
            assert_all_originals("response.completed", completed);
        } else {
            let v = r.json();
            assert_all_originals("responses", v["output"][0]["content"][0]["text"].as_str().unwrap());
        }
    }
}

#[tokio::test]
async fn gemini_whole_sse_and_json_array() {
    let env = env().await;
    let body = json!({"contents": [{"role": "user", "parts": [{"text": sample_text()}]}],
        "tools": [{"functionDeclarations": [{"name": "lookup"}]}]});
    for (path, kind) in [
        (
            "/gemini/v1beta/models/gemini-test:generateContent?key=client-own-key-must-not-leave",
            "whole",
        ),
        (
            "/gemini/v1beta/models/gemini-test:streamGenerateContent?alt=sse&key=client-own-key-must-not-leave",
            "sse",
        ),
        ("/gemini/v1beta/models/gemini-test:streamGenerateContent", "array"),
    ] {
        let r = env
            .post_json(path, &[("x-goog-api-key", CLIENT_KEY), ("x-mock-chunk", "3")], &body)
            .await;
        assert_eq!(r.status, 200, "{kind}: {}", r.text());
        let rec = env.last();
        assert_masked(&rec);
        assert!(rec.path.starts_with("/v1beta/models/gemini-test:"), "{}", rec.path);
        assert!(
            !rec.query.clone().unwrap_or_default().contains("key="),
            "client key param forwarded"
        );
        assert_eq!(rec.headers["x-goog-api-key"], GEMINI_KEY);
        match kind {
            "whole" => {
                let v = r.json();
                assert_all_originals(
                    "gemini",
                    v["candidates"][0]["content"]["parts"][0]["text"].as_str().unwrap(),
                );
                let args = &v["candidates"][0]["content"]["parts"][1]["functionCall"]["args"]["target"];
                assert_all_originals("gemini functionCall", args.as_str().unwrap());
            }
            "sse" => {
                assert_eq!(rec.query.as_deref(), Some("alt=sse"));
                assert_all_originals("gemini sse", &stream_text(&r.text()));
            }
            _ => assert_all_originals("gemini array", &stream_text(&r.text())),
        }
    }
}

#[tokio::test]
async fn placeholders_identical_across_requests_and_request_map_only() {
    let env = env().await;
    let ask = |t: String| json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": t}]});
    env.post_json("/anthropic/v1/messages", &[], &ask(format!("first {}", ORIGINALS[0])))
        .await;
    let first = env.last().json()["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    env.post_json("/anthropic/v1/messages", &[], &ask(format!("other {}", ORIGINALS[1])))
        .await;
    let r = env
        .post_json("/anthropic/v1/messages", &[], &ask(format!("first {}", ORIGINALS[0])))
        .await;
    let again = env.last().json()["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(first, again);
    assert!(first.starts_with("first AWS_EC2_"), "{first}");
    assert!(r.text().contains(ORIGINALS[0]));
    // A placeholder the client typed itself is masked too, so it comes back verbatim and never resolves to
    // someone's original.
    let typed = first.trim_start_matches("first ").to_string();
    let r = env
        .post_json("/anthropic/v1/messages", &[], &ask(format!("echo {typed}")))
        .await;
    assert!(r.text().contains(&typed), "{}", r.text());
    assert!(!r.text().contains(ORIGINALS[0]), "{}", r.text());
}

#[tokio::test]
async fn compressed_requests_and_responses() {
    use maskgate_gateway::body::{encode, Coding};
    let env = env().await;
    for c in [Coding::Gzip, Coding::Deflate, Coding::Br, Coding::Zstd] {
        for stream in [false, true] {
            let body = anthropic_body(stream).to_string();
            let req = http::Request::post(env.url("/anthropic/v1/messages"))
                .header("content-type", "application/json")
                .header("content-encoding", c.name())
                .header("accept-encoding", "gzip, deflate, br, zstd")
                .header("x-mock-encoding", c.name())
                .body(http_body_util::Full::new(bytes::Bytes::from(encode(
                    c,
                    body.as_bytes(),
                ))))
                .unwrap();
            let r = env.send(req).await;
            assert_eq!(r.status, 200, "{c:?}: {}", r.text());
            let rec = env.last();
            assert_masked(&rec);
            assert!(rec.headers.get("content-encoding").is_none());
            assert_eq!(
                rec.headers["accept-encoding"], "gzip, deflate, br, zstd",
                "the provider may compress"
            );
            assert!(
                r.headers.get("content-encoding").is_none(),
                "{c:?}: decoded for the client"
            );
            let text = if stream { stream_text(&r.text()) } else { r.text() };
            assert_all_originals(&format!("{c:?} stream={stream}"), &text);
        }
    }
}

/// Routes with `resolve = "tenant"` (OpenAI Responses with `previous_response_id`): an answer may quote
/// placeholders of earlier requests of the same tenant, looked up in the vault, streamed or not. Other routes,
/// and other tenants on tenant-wide routes, leave them as they are.
#[tokio::test]
async fn tenant_wide_resolution_for_stateful_routes() {
    let routes = r#"
[[routes]]
host = "stateful.openai.test"
path_prefix = "/stateful"
upstream = "http://api.openai.com"
connect_address = "127.0.0.1:MOCK"
resolve = "tenant"

[[routes]]
host = "other.openai.test"
path_prefix = "/stateful-other"
upstream = "http://api.openai.com"
connect_address = "127.0.0.1:MOCK"
resolve = "tenant"
tenant = "other"
"#;
    init();
    let mock = maskgate_gateway::mock::MockProvider::start().await.unwrap();
    let extra = routes.replace("MOCK", &mock.addr.port().to_string());
    let cfg = maskgate_gateway::config::Config::from_toml(&config_toml(mock.addr.port(), "", &extra)).unwrap();
    let gw = maskgate_gateway::start(cfg, None).await.unwrap();
    let env = Env {
        gw,
        mock,
        client: client(),
    };
    for stream in [false, true] {
        let first =
            json!({"model": "m", "stream": stream, "input": format!("first {} in {}", ORIGINALS[0], ORIGINALS[1])});
        let r = env
            .post_json("/stateful/v1/responses", &[("x-mock-chunk", "3")], &first)
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_masked(&env.last());
        // A follow-up without identifiers: the provider's answer quotes the earlier request's placeholders.
        let follow = json!({"model": "m", "stream": stream, "input": "and now?", "previous_response_id": "resp_1"});
        for (prefix, resolves) in [("/stateful", true), ("/openai", false), ("/stateful-other", false)] {
            env.post_json("/stateful/v1/responses", &[], &first).await;
            let r = env
                .post_json(&format!("{prefix}/v1/responses"), &[("x-mock-chunk", "3")], &follow)
                .await;
            assert_eq!(r.status, 200, "{}", r.text());
            let rec = env.last();
            assert_no_original("follow-up request", &rec.body_str());
            assert!(rec.body_str().contains("previous_response_id"));
            let text = if stream {
                stream_text(&r.text())
            } else {
                r.json()["output"][0]["content"][0]["text"]
                    .as_str()
                    .unwrap()
                    .to_string()
            };
            assert!(text.starts_with("Earlier you said: first "), "{text}");
            if resolves {
                assert!(
                    text.contains(ORIGINALS[0]) && text.contains(ORIGINALS[1]),
                    "{prefix} stream={stream}: {text}"
                );
                assert!(!text.contains("AWS_"), "{prefix} stream={stream}: {text}");
            } else {
                assert_no_original(&format!("{prefix} stream={stream}"), &text);
                assert!(text.contains("AWS_EC2_") && text.contains("AWS_VPC_"), "{text}");
            }
        }
    }
}
