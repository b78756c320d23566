//! Detector and masker throughput on a file: `cargo run --release -p maskgate-engine --example throughput FILE`.
use maskgate_engine::{Detector, KeyContext, Masker, MaskerConfig};
use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).expect("usage: throughput FILE");
    let data = std::fs::read_to_string(path).expect("readable UTF-8 file");
    let d = Detector::default();
    let mut out = Vec::new();
    let t = Instant::now();
    let mut n = 0;
    for chunk in data.as_bytes().chunks(1 << 20) {
        out.clear();
        d.find(chunk, KeyContext::default(), &mut out);
        n += out.len();
    }
    let s = t.elapsed().as_secs_f64();
    println!("detect: {n} findings, {:.0} MB/s", data.len() as f64 / s / 1e6);
    if std::env::var_os("DETECT_ONLY").is_some() {
        return;
    }
    let m = Masker::new(&MaskerConfig::default()).unwrap();
    let t = Instant::now();
    let mut bytes = 0;
    for chunk in data.as_bytes().chunks(1 << 20) {
        let plan = m.plan_text(std::str::from_utf8(chunk).unwrap_or(""));
        let ph: Vec<String> = plan
            .entries()
            .iter()
            .enumerate()
            .map(|(i, e)| maskgate_engine::placeholder::format(&e.prefix, i as u64 + 1))
            .collect();
        bytes += plan.finish(&ph).map(|m| m.body.len()).unwrap_or(0);
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "mask (plan+finish, no vault): {bytes} bytes out, {:.0} MB/s",
        data.len() as f64 / s / 1e6
    );
}
