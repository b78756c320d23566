//! Open-loop, fixed-rate HTTP load generator for the gateway benchmarks (what wrk2 does, without wrk2).
//!
//! Request `i` is due at `start + i / rate`; its latency is measured from that due time, not from when it was
//! actually sent, so a stalled server (or a stalled generator) shows up in the percentiles instead of silently
//! lowering the rate (no coordinated omission). Requests are never held back waiting for earlier ones: each is
//! its own task on a keep-alive connection pool.
//!
//! Every response is checked: status 2xx, and optionally `--expect TEXT` present and `--reject TEXT` absent in
//! the body. The body file may hold `@@N@@`, replaced in each request by a 17-digit hex counter (e.g. to carry a
//! new EC2 instance id `i-@@N@@` in every request).
//!
//! ```sh
//! cargo run --release -p maskgate-gateway --example fixed_rate -- \
//!     --url http://127.0.0.1:8000/anthropic/v1/messages --body body.json --rate 1000 --seconds 10 \
//!     --warmup 2 --expect i-0123456789abcdef0 --reject AWS_EC2_ --name gateway
//! ```
//! Prints one JSON line: sent, ok, failed, achieved rate, p50/p90/p99/p99.9/max in ms (after the warm-up), from
//! the due time (`p99_ms`: includes the generator's own lag, e.g. Tokio's 1 ms timer granularity) and from the
//! actual send (`send_p99_ms`: service time only).
//! Exits 1 when any request failed (or was skipped: more than `--max-in-flight` waiting). Warns when fewer than
//! 90 % were sent within 5 ms of their due time (Tokio's timer has 1 ms granularity, so some lag is normal on a
//! busy machine; it counts in the latencies from the due time either way).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

struct Args {
    url: String,
    body: Vec<u8>,
    rate: f64,
    seconds: f64,
    warmup: f64,
    expect: Option<String>,
    reject: Option<String>,
    name: String,
    max_in_flight: usize,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        url: String::new(),
        body: Vec::new(),
        rate: 1000.0,
        seconds: 10.0,
        warmup: 2.0,
        expect: None,
        reject: None,
        name: "target".into(),
        max_in_flight: 4096,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or(format!("{k}: value missing"));
        match k.as_str() {
            "--url" => a.url = v()?,
            "--body" => {
                let f = v()?;
                a.body = std::fs::read(&f).map_err(|e| format!("{f}: {e}"))?;
            }
            "--rate" => a.rate = v()?.parse().map_err(|_| "--rate: a number")?,
            "--seconds" => a.seconds = v()?.parse().map_err(|_| "--seconds: a number")?,
            "--warmup" => a.warmup = v()?.parse().map_err(|_| "--warmup: a number")?,
            "--expect" => a.expect = Some(v()?),
            "--reject" => a.reject = Some(v()?),
            "--name" => a.name = v()?,
            "--max-in-flight" => a.max_in_flight = v()?.parse().map_err(|_| "--max-in-flight: a number")?,
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    if a.url.is_empty() || a.body.is_empty() || a.rate <= 0.0 || a.seconds <= 0.0 {
        return Err(
            "usage: fixed_rate --url URL --body FILE [--rate N] [--seconds S] [--warmup S] \
                    [--expect TEXT] [--reject TEXT] [--name NAME]"
                .into(),
        );
    }
    Ok(a)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// The body with `@@N@@` replaced by `n` as 17 hex digits (precomputed split, so no per-request search).
struct Template {
    parts: Vec<Vec<u8>>,
}

impl Template {
    fn new(body: &[u8]) -> Template {
        let mut parts = Vec::new();
        let mut rest = body;
        while let Some(i) = rest.windows(5).position(|w| w == b"@@N@@") {
            parts.push(rest[..i].to_vec());
            rest = &rest[i + 5..];
        }
        parts.push(rest.to_vec());
        Template { parts }
    }

    fn render(&self, n: u64) -> Bytes {
        if self.parts.len() == 1 {
            return Bytes::from(self.parts[0].clone());
        }
        let hex = format!("{n:017x}");
        let mut out = Vec::with_capacity(self.parts.iter().map(Vec::len).sum::<usize>() + 17 * self.parts.len());
        for (i, p) in self.parts.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(hex.as_bytes());
            }
            out.extend_from_slice(p);
        }
        Bytes::from(out)
    }
}

#[derive(Debug)]
#[allow(dead_code)] // the fields are read through Debug, for `first_failure`
enum Outcome {
    Ok,
    Status(u16),
    Check(&'static str),
    Transport,
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let code = rt.block_on(run(args));
    std::process::exit(code);
}

async fn run(a: Args) -> i32 {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1024)
        .pool_idle_timeout(Duration::from_secs(30))
        .build_http();
    let uri: http::Uri = match a.url.parse() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("--url: {e}");
            return 2;
        }
    };
    let template = Arc::new(Template::new(&a.body));
    let expect = a.expect.clone().map(|s| Arc::<[u8]>::from(s.into_bytes()));
    let reject = a.reject.clone().map(|s| Arc::<[u8]>::from(s.into_bytes()));
    let total = (a.rate * (a.warmup + a.seconds)).round() as u64;
    let warm = (a.rate * a.warmup).round() as u64;
    let period = Duration::from_secs_f64(1.0 / a.rate);
    // A counter base per run, so `@@N@@` values differ between runs against the same vault.
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
        << 8;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, u64, u64, Outcome)>();
    let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut late_sends = 0u64; // sent more than 5 ms after their due time (generator starved of CPU)
    let mut skipped = 0u64; // not sent: too many in flight (the target has stalled)
    for i in 0..total {
        let due = start + period.mul_f64(i as f64);
        tokio::time::sleep_until(due).await;
        if tokio::time::Instant::now() > due + Duration::from_millis(5) {
            late_sends += 1;
        }
        if in_flight.load(std::sync::atomic::Ordering::Relaxed) >= a.max_in_flight {
            skipped += 1;
            continue;
        }
        in_flight.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sent_at = tokio::time::Instant::now();
        let req = http::Request::post(uri.clone())
            .header("content-type", "application/json")
            .body(Full::new(template.render(base + i)))
            .expect("request");
        let (client, tx, expect, reject, in_flight) = (
            client.clone(),
            tx.clone(),
            expect.clone(),
            reject.clone(),
            in_flight.clone(),
        );
        tokio::spawn(async move {
            let outcome = match client.request(req).await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match resp.into_body().collect().await {
                        Ok(b) => {
                            let b = b.to_bytes();
                            if !(200..300).contains(&status) {
                                Outcome::Status(status)
                            } else if expect.as_ref().is_some_and(|e| !contains(&b, e)) {
                                Outcome::Check("expected text missing")
                            } else if reject.as_ref().is_some_and(|r| contains(&b, r)) {
                                Outcome::Check("rejected text present")
                            } else {
                                Outcome::Ok
                            }
                        }
                        Err(_) => Outcome::Transport,
                    }
                }
                Err(_) => Outcome::Transport,
            };
            // From the due time: waiting in the generator counts too.
            let us = due.elapsed().as_micros() as u64;
            let service_us = sent_at.elapsed().as_micros() as u64;
            in_flight.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            let _ = tx.send((i, us, service_us, outcome));
        });
    }
    let sent_for = start.elapsed();
    drop(tx);
    let mut lat = Vec::with_capacity(total as usize);
    let mut service = Vec::with_capacity(total as usize);
    let (mut ok, mut failed) = (0u64, 0u64);
    let mut first_failure: Option<String> = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((i, us, service_us, outcome))) => {
                match outcome {
                    Outcome::Ok => ok += 1,
                    other => {
                        failed += 1;
                        first_failure.get_or_insert_with(|| format!("{other:?}"));
                    }
                }
                if i >= warm {
                    lat.push(us);
                    service.push(service_us);
                }
            }
            Ok(None) => break,
            Err(_) => {
                failed += 1;
                first_failure.get_or_insert_with(|| "no answer within 30 s".into());
                break;
            }
        }
    }
    lat.sort_unstable();
    service.sort_unstable();
    let measured = total - warm;
    let summary = serde_json::json!({
        "name": a.name,
        "rate": a.rate,
        "seconds": a.seconds,
        "sent": total - skipped,
        "ok": ok,
        "failed": failed,
        "skipped": skipped,
        "late_sends": late_sends,
        "achieved_rate": ((total - skipped) as f64 / sent_for.as_secs_f64() * 10.0).round() / 10.0,
        "measured": measured,
        "p50_ms": pct(&lat, 0.50),
        "p90_ms": pct(&lat, 0.90),
        "p99_ms": pct(&lat, 0.99),
        "p999_ms": pct(&lat, 0.999),
        "max_ms": pct(&lat, 1.0),
        "send_p50_ms": pct(&service, 0.50),
        "send_p99_ms": pct(&service, 0.99),
        "first_failure": first_failure,
    });
    println!("{summary}");
    let on_time = total.saturating_sub(skipped + late_sends) as f64 / total.max(1) as f64;
    if on_time < 0.90 {
        // Still measured correctly (from the due times), but the machine is short of CPU: say so.
        eprintln!(
            "{}: warning: only {:.1} % of requests sent within 5 ms of their due time (machine overloaded)",
            a.name,
            on_time * 100.0
        );
    }
    if failed > 0 || skipped > 0 || ok == 0 {
        eprintln!("{}: FAILED requests (see first_failure)", a.name);
        return 1;
    }
    0
}
