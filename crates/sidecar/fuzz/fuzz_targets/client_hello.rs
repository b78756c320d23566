//! `cd crates/sidecar && cargo +nightly fuzz run client_hello`: the ClientHello/SNI reader must be total
//! (no panic, bounded work) on any bytes, and only ever return a valid host name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maskgate_sidecar::clienthello::{parse, valid_host, Parse};

fuzz_target!(|data: &[u8]| {
    if let Parse::Done(ch) = parse(data) {
        if let Some(sni) = ch.sni {
            assert!(valid_host(sni.as_bytes()).as_deref() == Some(sni.as_str()));
        }
    }
});
