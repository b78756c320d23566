//! Trust between sidecar and gateway: the tenant header counts only with the sidecar token.

use serde_json::json;

use crate::common::*;

fn msg(id: &str) -> serde_json::Value {
    json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": format!("check {id} now")}]})
}

/// The placeholder the provider received for the one EC2 id of the request.
fn placeholder(env: &Env) -> String {
    let body = env.last().body_str();
    let i = body.find("AWS_EC2_").expect("masked");
    body[i..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

#[tokio::test]
async fn tenant_header_only_from_authenticated_sidecars() {
    std::env::set_var("MG_TEST_SIDECAR_TOKEN", "sidecar-secret-token");
    let env = env_with("sidecar_token_env = \"MG_TEST_SIDECAR_TOKEN\"", "").await;
    let tok = ("x-maskgate-sidecar-token", "sidecar-secret-token");
    // Authenticated: each tenant has its own counters, so both first ids get the same placeholder.
    let r = env
        .post_json(
            "/anthropic/v1/messages",
            &[tok, ("x-maskgate-tenant", "team-a")],
            &msg("i-0aaaaaaaaaaaaaaa1"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let a = placeholder(&env);
    let rec = env.last();
    assert!(
        rec.headers.get("x-maskgate-sidecar-token").is_none(),
        "token forwarded upstream"
    );
    assert!(
        rec.headers.get("x-maskgate-tenant").is_none(),
        "tenant header forwarded upstream"
    );
    env.post_json(
        "/anthropic/v1/messages",
        &[tok, ("x-maskgate-tenant", "team-b")],
        &msg("i-0bbbbbbbbbbbbbbb1"),
    )
    .await;
    let b = placeholder(&env);
    assert_eq!(a, b, "tenants team-a and team-b share counters");
    // Without the token (or with a wrong one) the header is ignored: both land in the route's tenant.
    env.post_json(
        "/anthropic/v1/messages",
        &[("x-maskgate-tenant", "team-c")],
        &msg("i-0ccccccccccccccc1"),
    )
    .await;
    let c = placeholder(&env);
    env.post_json(
        "/anthropic/v1/messages",
        &[("x-maskgate-sidecar-token", "wrong"), ("x-maskgate-tenant", "team-d")],
        &msg("i-0ddddddddddddddd1"),
    )
    .await;
    let d = placeholder(&env);
    assert_ne!(c, d, "unauthenticated tenant header was honoured");
    let logs = logs();
    assert!(logs.contains("team-a") && logs.contains("team-b"));
    assert!(
        !logs.contains("team-c") && !logs.contains("team-d"),
        "unauthenticated tenant logged"
    );
}

#[tokio::test]
async fn tenant_header_ignored_without_configured_token() {
    let env = env().await;
    env.post_json(
        "/anthropic/v1/messages",
        &[("x-maskgate-tenant", "team-x")],
        &msg("i-0eeeeeeeeeeeeeee1"),
    )
    .await;
    env.post_json(
        "/anthropic/v1/messages",
        &[("x-maskgate-tenant", "team-y")],
        &msg("i-0fffffffffffffff1"),
    )
    .await;
    assert!(!logs().contains("team-x"));
}
