//! `cd crates/sidecar && cargo +nightly fuzz run client_hello`: the ClientHello/SNI reader must be total
//! (no panic, bounded work) on any bytes, only ever return a valid host name, and decide the same however TCP
//! splits the bytes: when the whole input parses, every prefix of it is `Incomplete` (never `Invalid`, never
//! another `Done`), and bytes after the ClientHello change nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maskgate_sidecar::clienthello::{parse, valid_host, Parse};

fuzz_target!(|data: &[u8]| {
    let full = parse(data);
    let Parse::Done(ch) = &full else { return };
    if let Some(sni) = &ch.sni {
        assert!(valid_host(sni.as_bytes()).as_deref() == Some(sni.as_str()));
    }
    // The shortest prefix that parses is where the ClientHello ends.
    let step = (data.len() / 64).max(1);
    let mut end = data.len();
    for n in (0..data.len()).step_by(step).chain([data.len().saturating_sub(1)]) {
        match parse(&data[..n]) {
            Parse::Incomplete => {}
            Parse::Done(c) => {
                assert_eq!(&c, ch, "a prefix parsed differently");
                end = end.min(n);
            }
            Parse::Invalid(e) => panic!("prefix of {n} bytes invalid ({e}) but the whole parses"),
        }
    }
    let mut more = data[..end].to_vec();
    more.extend_from_slice(b"\x17\x03\x03\x00\x01x trailing");
    assert_eq!(parse(&more), full, "bytes after the ClientHello changed the result");
});
