//! A small, bounded TLS ClientHello reader: only what the sidecar needs before deciding (SNI, ALPN).
//!
//! Pure (no I/O, no allocation beyond the result), total on any input: every length is checked against what
//! remains, so it can be fuzzed directly. The ClientHello may span several TLS records (up to
//! [`MAX_CLIENT_HELLO`] bytes in all); the caller keeps reading while the result is [`Parse::Incomplete`].

/// Largest ClientHello accepted (handshake message plus record headers). Post-quantum key shares make
/// ClientHellos of ~1.8 KiB common; 16 KiB leaves room without letting a peer make us buffer much.
pub const MAX_CLIENT_HELLO: usize = 16 * 1024 + 5 * 4;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHello {
    /// The `host_name` of the server_name extension, lower-cased, without a trailing dot.
    pub sni: Option<String>,
    /// ALPN protocols offered.
    pub alpn: Vec<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse {
    /// More bytes are needed (and allowed): read more and call again with the whole buffer.
    Incomplete,
    Done(ClientHello),
    /// Not a ClientHello, malformed, or larger than allowed.
    Invalid(&'static str),
}

/// True when `buf` starts like a TLS handshake record (`0x16 0x03 0x0?`).
pub fn looks_like_tls(buf: &[u8]) -> bool {
    buf.first() == Some(&0x16) && buf.get(1).is_none_or(|&b| b == 3)
}

/// Reads the ClientHello at the start of `buf` (TLS records as received from the client).
pub fn parse(buf: &[u8]) -> Parse {
    // Reassemble the handshake message from the records' fragments.
    let mut msg = [0u8; MAX_CLIENT_HELLO];
    let mut msg_len = 0usize;
    let mut pos = 0usize;
    loop {
        if pos + 5 > buf.len() {
            return if pos >= MAX_CLIENT_HELLO {
                Parse::Invalid("too large")
            } else {
                Parse::Incomplete
            };
        }
        if buf[pos] != 0x16 {
            return Parse::Invalid("not a handshake record");
        }
        if buf[pos + 1] != 3 {
            return Parse::Invalid("bad record version");
        }
        let rec_len = u16::from_be_bytes([buf[pos + 3], buf[pos + 4]]) as usize;
        if rec_len == 0 || rec_len > 16384 {
            return Parse::Invalid("bad record length");
        }
        if pos + 5 + rec_len > MAX_CLIENT_HELLO {
            return Parse::Invalid("too large");
        }
        if pos + 5 + rec_len > buf.len() {
            // Use what has arrived of this record to fail early on garbage.
            let have = &buf[pos + 5..];
            msg[msg_len..msg_len + have.len()].copy_from_slice(have);
            return match check_header(&msg[..msg_len + have.len()]) {
                Err(e) => Parse::Invalid(e),
                Ok(_) => Parse::Incomplete,
            };
        }
        let frag = &buf[pos + 5..pos + 5 + rec_len];
        msg[msg_len..msg_len + frag.len()].copy_from_slice(frag);
        msg_len += frag.len();
        pos += 5 + rec_len;
        match check_header(&msg[..msg_len]) {
            Err(e) => return Parse::Invalid(e),
            Ok(Some(body_len)) if msg_len >= 4 + body_len => {
                return match parse_body(&msg[4..4 + body_len]) {
                    Some(ch) => Parse::Done(ch),
                    None => Parse::Invalid("malformed ClientHello"),
                };
            }
            Ok(_) => {}
        }
    }
}

/// `Ok(Some(len))` once the handshake header is complete, `Ok(None)` before.
fn check_header(msg: &[u8]) -> Result<Option<usize>, &'static str> {
    if let Some(&t) = msg.first() {
        if t != 1 {
            return Err("not a ClientHello");
        }
    }
    if msg.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([0, msg[1], msg[2], msg[3]]) as usize;
    if len + 4 > MAX_CLIENT_HELLO {
        return Err("too large");
    }
    Ok(Some(len))
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.b.len() {
            return None;
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Some(h)
    }
    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| b[0] as usize)
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(n)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(n)
    }
}

fn parse_body(body: &[u8]) -> Option<ClientHello> {
    let mut r = Reader { b: body };
    r.take(2)?; // legacy_version
    r.take(32)?; // random
    r.vec8()?; // session id
    r.vec16()?; // cipher suites
    r.vec8()?; // compression methods
    let mut out = ClientHello::default();
    if r.b.is_empty() {
        return Some(out); // no extensions
    }
    let mut exts = Reader { b: r.vec16()? };
    while !exts.b.is_empty() {
        let ty = exts.u16()?;
        let data = exts.vec16()?;
        match ty {
            0 => {
                let mut d = Reader { b: data };
                let mut list = Reader { b: d.vec16()? };
                while !list.b.is_empty() {
                    let name_type = list.u8()?;
                    let name = list.vec16()?;
                    if name_type == 0 && out.sni.is_none() {
                        out.sni = Some(valid_host(name)?);
                    }
                }
            }
            16 => {
                let mut d = Reader { b: data };
                let mut list = Reader { b: d.vec16()? };
                while !list.b.is_empty() {
                    let p = list.vec8()?;
                    if out.alpn.len() < 16 {
                        out.alpn.push(p.to_vec());
                    }
                }
            }
            _ => {}
        }
    }
    Some(out)
}

/// A DNS host name (letters, digits, `-`, `_`, `.`), at most 253 bytes; lower-cased, trailing dot removed.
pub fn valid_host(name: &[u8]) -> Option<String> {
    let name = name.strip_suffix(b".").unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return None;
    }
    if !name
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        return None;
    }
    if name.split(|&b| b == b'.').any(|l| l.is_empty() || l.len() > 63) {
        return None;
    }
    Some(String::from_utf8_lossy(name).to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A ClientHello as rustls sends it, captured into a buffer.
    fn rustls_hello(sni: &str, alpn: &[&[u8]]) -> Vec<u8> {
        use std::sync::Arc;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.roots = vec![];
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
        let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
        let mut out = Vec::new();
        conn.write_tls(&mut out).unwrap();
        out
    }

    #[test]
    fn reads_sni_and_alpn_from_rustls() {
        let b = rustls_hello("API.Anthropic.com", &[b"h2", b"http/1.1"]);
        let Parse::Done(ch) = parse(&b) else {
            panic!("{:?}", parse(&b))
        };
        assert_eq!(ch.sni.as_deref(), Some("api.anthropic.com"));
        assert_eq!(ch.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        for cut in 0..b.len() {
            assert_eq!(parse(&b[..cut]), Parse::Incomplete, "prefix of {cut} bytes");
        }
    }

    #[test]
    fn reassembles_fragmented_records() {
        let b = rustls_hello("api.openai.com", &[]);
        let body = &b[5..];
        let mut split = Vec::new();
        for chunk in body.chunks(100) {
            split.extend_from_slice(&[0x16, 3, 1]);
            split.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            split.extend_from_slice(chunk);
        }
        let Parse::Done(ch) = parse(&split) else { panic!() };
        assert_eq!(ch.sni.as_deref(), Some("api.openai.com"));
    }

    #[test]
    fn rejects_garbage_early() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Parse::Invalid("not a handshake record"));
        assert_eq!(parse(&[0x16, 3, 1, 0, 10, 2]), Parse::Invalid("not a ClientHello"));
        assert_eq!(parse(&[0x16, 3, 1, 0, 0]), Parse::Invalid("bad record length"));
        // A handshake claiming 1 MiB.
        assert_eq!(parse(&[0x16, 3, 1, 0, 4, 1, 0x10, 0, 0]), Parse::Invalid("too large"));
    }

    proptest! {
        #[test]
        fn total_on_any_input(b in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse(&b);
        }

        #[test]
        fn total_on_mutated_hellos(pos in 0usize..400, val in any::<u8>(), cut in 0usize..600) {
            let mut b = rustls_hello("api.anthropic.com", &[b"h2"]);
            let p = pos % b.len();
            b[p] = val;
            let c = cut.min(b.len());
            if let Parse::Done(ch) = parse(&b[..c]) {
                if let Some(s) = ch.sni { prop_assert!(valid_host(s.as_bytes()).is_some()); }
            }
        }

        #[test]
        fn any_valid_host_round_trips(host in "[a-z][a-z0-9-]{0,18}[a-z0-9](\\.[a-z][a-z0-9]{0,19}){0,4}") {
            let b = rustls_hello(&host, &[]);
            prop_assert_eq!(parse(&b), Parse::Done(ClientHello { sni: Some(host.clone()), alpn: vec![] }));
        }
    }
}
