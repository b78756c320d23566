//! Prints what the detector finds on each line of stdin: `cargo run -p maskgate-engine --example scan < FILE`.
use maskgate_engine::{Detector, KeyContext};
use std::io::BufRead;

fn main() {
    let d = Detector::default();
    let mut out = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin is not UTF-8");
        out.clear();
        d.find(line.as_bytes(), KeyContext::default(), &mut out);
        let found: Vec<String> = out
            .iter()
            .map(|f| format!("{}={}", d.kind(f.kind).name, &line[f.start..f.end]))
            .collect();
        println!("{line}\n    -> {}", found.join("  "));
    }
}
