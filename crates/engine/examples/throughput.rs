//! Detector and masker throughput on a file: `cargo run --release -p maskgate-engine --example throughput FILE`.
//!
//! The file is cut into blocks of at most 1 MiB at line ends (as `maskgate mask` reads stdin). `DETECT_ONLY=1`
//! stops after the detector. The masking phase validates each block as UTF-8 (as the CLI does), plans, assigns
//! placeholders without a vault, and finishes (rewrite and leak check).
use maskgate_engine::{Detector, KeyContext, Masker, MaskerConfig};
use std::time::Instant;

fn blocks(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let cut = if rest.len() <= 1 << 20 {
            rest.len()
        } else {
            memchr::memrchr(b'\n', &rest[..1 << 20]).map_or(1 << 20, |p| p + 1)
        };
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    out
}

fn main() {
    let path = std::env::args().nth(1).expect("usage: throughput FILE");
    let data = std::fs::read(path).expect("readable file");
    let blocks = blocks(&data);
    let d = Detector::default();
    let mut out = Vec::new();
    let t = Instant::now();
    let mut n = 0;
    for b in &blocks {
        out.clear();
        d.find(b, KeyContext::default(), &mut out);
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
    for b in &blocks {
        let text = std::str::from_utf8(b).expect("UTF-8 blocks");
        let plan = m.plan_text(text);
        let ph: Vec<String> = plan
            .entries()
            .iter()
            .enumerate()
            .map(|(i, e)| maskgate_engine::placeholder::format(e.prefix, i as u64 + 1))
            .collect();
        bytes += plan.finish(&ph).map(|m| m.body.len()).unwrap_or(0);
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "mask (plan+finish, no vault): {bytes} bytes out, {:.0} MB/s",
        data.len() as f64 / s / 1e6
    );
}
