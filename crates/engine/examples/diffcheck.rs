//! Compares `Detector::find` with `Detector::find_reference` line by line on a file.
use maskgate_engine::{Detector, KeyContext};

fn main() {
    let path = std::env::args().nth(1).expect("usage: diffcheck FILE");
    let data = std::fs::read(path).unwrap();
    let d = Detector::default();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut bad = 0;
    for chunk in data.chunks(1 << 20) {
        a.clear();
        b.clear();
        d.find(chunk, KeyContext::default(), &mut a);
        d.find_reference(chunk, KeyContext::default(), &mut b);
        if a != b {
            let (sa, sb): (std::collections::HashSet<_>, std::collections::HashSet<_>) = (
                a.iter().copied().map(|f| (f.start, f.end)).collect(),
                b.iter().copied().map(|f| (f.start, f.end)).collect(),
            );
            for f in b.iter().filter(|f| !sa.contains(&(f.start, f.end))) {
                let lo = f.start.saturating_sub(60);
                println!(
                    "MISSING at {} (mod64 {}, mod8192 {}) {} in ...{}...",
                    f.start,
                    f.start % 64,
                    f.start % 8192,
                    String::from_utf8_lossy(&chunk[f.start..f.end]),
                    String::from_utf8_lossy(&chunk[lo..(f.end + 20).min(chunk.len())])
                );
                bad += 1;
            }
            for f in a.iter().filter(|f| !sb.contains(&(f.start, f.end))) {
                println!("EXTRA {}", String::from_utf8_lossy(&chunk[f.start..f.end]));
                bad += 1;
            }
        }
    }
    println!("{bad} differences");
}
