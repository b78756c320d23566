//! Admin API: `/status`, `/health/live`, `/health/ready`, `/metrics`, `/config`, `POST /config/reload`.
//! Optional bearer token (health probes stay open).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use crate::body::{full, RespBody};
use crate::error::ApiError;
use crate::state::Shared;

fn json_resp(status: StatusCode, v: serde_json::Value) -> Response<RespBody> {
    let mut r = Response::new(full(serde_json::to_vec(&v).unwrap_or_default()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<RespBody>, Infallible> {
    let rt = shared.runtime();
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let open = path == "/health/live" || path == "/health/ready";
    if !open {
        if let Some(token) = &rt.admin_token {
            let ok = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|t| ct_eq(t.as_bytes(), token.as_bytes()));
            if !ok {
                let mut r =
                    ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "Admin API token required").response();
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return Ok(r);
            }
        }
    }
    let r = match (method.clone(), path.as_str()) {
        (Method::GET, "/health/live") => json_resp(StatusCode::OK, json!({"status": "live"})),
        (Method::GET, "/health/ready") => {
            let ping = tokio::time::timeout(
                rt.config.gateway.vault_timeout.min(Duration::from_secs(5)),
                shared.vault.ping(),
            )
            .await;
            match ping {
                Ok(Ok(())) => json_resp(
                    StatusCode::OK,
                    json!({"status": "ready", "vault": shared.vault.backend(), "config": "loaded"}),
                ),
                _ => ApiError::vault_unavailable().response(),
            }
        }
        (Method::GET, "/status") => {
            let loaded = rt
                .loaded_at
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            json_resp(
                StatusCode::OK,
                json!({
                    "status": "ok",
                    "version": env!("CARGO_PKG_VERSION"),
                    "uptime_seconds": shared.started.elapsed().as_secs(),
                    "vault": shared.vault.backend(),
                    "config_file": shared.config_path.as_ref().map(|p| p.display().to_string()),
                    "config_loaded_at": loaded,
                    "proxy_listen": rt.config.gateway.listen.to_string(),
                    "routes": rt.routes.iter().map(|r| json!({
                        "host": r.host,
                        "path_prefix": r.cfg.path_prefix,
                        "credential_loaded": r.credential.as_ref().map(|(_, v)| v.is_ok()),
                    })).collect::<Vec<_>>(),
                }),
            )
        }
        (Method::GET, "/metrics") => {
            let mut r = Response::new(full(shared.metrics.encode()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            );
            r
        }
        (Method::GET, "/config") => {
            let mut v = rt.config.redacted();
            // Secret values are never part of the config; say which ones could be read.
            if let Some(routes) = v.get_mut("routes").and_then(|r| r.as_array_mut()) {
                for (r, rr) in routes.iter_mut().zip(&rt.routes) {
                    if let (Some(c), Some((_, val))) = (r.get_mut("credential"), &rr.credential) {
                        c["value"] = json!(if val.is_ok() { "<redacted>" } else { "<unavailable>" });
                    }
                }
            }
            if rt.admin_token.is_some() {
                v["gateway"]["admin_token"] = json!("<redacted>");
            }
            json_resp(StatusCode::OK, v)
        }
        (Method::POST, "/config/reload") => match shared.reload() {
            Ok(()) => json_resp(StatusCode::OK, json!({"status": "reloaded"})),
            Err(e) => ApiError::new(StatusCode::BAD_REQUEST, "CONFIG_INVALID", e.to_string()).response(),
        },
        (_, "/health/live" | "/health/ready" | "/status" | "/metrics" | "/config" | "/config/reload") => ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "Method not allowed",
        )
        .response(),
        _ => ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "Not found").response(),
    };
    Ok(r)
}
