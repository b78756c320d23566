//! Body types and content codings (gzip, deflate, br, zstd), whole and streaming.

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type RespBody = UnsyncBoxBody<Bytes, BoxError>;

pub fn full(b: impl Into<Bytes>) -> RespBody {
    Full::new(b.into()).map_err(|never| match never {}).boxed_unsync()
}

pub fn empty() -> RespBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Deflate,
    Br,
    Zstd,
}

impl Coding {
    /// `Err` carries the unknown coding's name.
    pub fn parse(s: &str) -> Result<Option<Coding>, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => Ok(None),
            "gzip" | "x-gzip" => Ok(Some(Coding::Gzip)),
            "deflate" => Ok(Some(Coding::Deflate)),
            "br" => Ok(Some(Coding::Br)),
            "zstd" => Ok(Some(Coding::Zstd)),
            other => Err(other.to_string()),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Br => "br",
            Coding::Zstd => "zstd",
        }
    }
}

/// The codings of a `Content-Encoding` header, in the order they were applied. `Err` for an unknown coding.
pub fn parse_codings(headers: &http::HeaderMap) -> Result<Vec<Coding>, String> {
    let mut out = Vec::new();
    for v in headers.get_all(http::header::CONTENT_ENCODING) {
        let v = v.to_str().map_err(|_| "invalid Content-Encoding".to_string())?;
        for part in v.split(',') {
            match Coding::parse(part) {
                Ok(Some(c)) => out.push(c),
                Ok(None) => {}
                Err(_) => return Err(format!("unsupported Content-Encoding {:?}", part.trim())),
            }
        }
    }
    Ok(out)
}

/// A `Write` sink whose bytes can be taken while a decoder owns it.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Sink {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

enum Dec {
    Gzip(flate2::write::MultiGzDecoder<Sink>),
    Zlib(flate2::write::ZlibDecoder<Sink>),
    Raw(flate2::write::DeflateDecoder<Sink>),
    Br(Box<brotli::DecompressorWriter<Sink>>),
    Zstd(zstd::stream::write::Decoder<'static, Sink>),
}

impl Dec {
    fn new(c: Coding, sink: Sink) -> std::io::Result<Dec> {
        Ok(match c {
            Coding::Gzip => Dec::Gzip(flate2::write::MultiGzDecoder::new(sink)),
            Coding::Deflate => Dec::Zlib(flate2::write::ZlibDecoder::new(sink)),
            Coding::Br => Dec::Br(Box::new(brotli::DecompressorWriter::new(sink, 8192))),
            Coding::Zstd => Dec::Zstd(zstd::stream::write::Decoder::new(sink)?),
        })
    }
    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Dec::Gzip(d) => d.write_all(b),
            Dec::Zlib(d) => d.write_all(b),
            Dec::Raw(d) => d.write_all(b),
            Dec::Br(d) => d.write_all(b),
            Dec::Zstd(d) => d.write_all(b),
        }
    }
    fn finish(self) -> std::io::Result<()> {
        match self {
            Dec::Gzip(d) => d.finish().map(drop),
            Dec::Zlib(d) => d.finish().map(drop),
            Dec::Raw(d) => d.finish().map(drop),
            Dec::Br(mut d) => d.flush().and_then(|_| d.close()),
            Dec::Zstd(mut d) => d.flush(),
        }
    }
}

/// Push-style decoder for a stack of codings (applied in order, so undone in reverse), with an output limit.
pub struct Decoder {
    stages: Vec<(Option<Dec>, Sink, Coding)>,
    limit: u64,
    produced: u64,
    first: bool,
}

impl Decoder {
    pub fn new(codings: &[Coding], limit: u64) -> std::io::Result<Decoder> {
        let mut stages = Vec::new();
        for c in codings.iter().rev() {
            let sink = Sink::default();
            stages.push((Some(Dec::new(*c, sink.clone())?), sink, *c));
        }
        Ok(Decoder {
            stages,
            limit,
            produced: 0,
            first: true,
        })
    }

    pub fn is_identity(&self) -> bool {
        self.stages.is_empty()
    }

    /// Decodes `input`, appending what is ready to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        self.run(input, out, false)
    }

    pub fn finish(&mut self, out: &mut Vec<u8>) -> std::io::Result<()> {
        self.run(&[], out, true)
    }

    fn run(&mut self, input: &[u8], out: &mut Vec<u8>, finish: bool) -> std::io::Result<()> {
        if self.stages.is_empty() {
            out.extend_from_slice(input);
            return self.count(input.len());
        }
        let mut data = input.to_vec();
        let first = std::mem::replace(&mut self.first, false);
        for (dec, sink, coding) in self.stages.iter_mut() {
            if let Some(d) = dec.as_mut() {
                if !data.is_empty() {
                    let r = d.write_all(&data);
                    // "deflate" is meant to be zlib-wrapped, but some servers send raw deflate.
                    if r.is_err() && first && *coding == Coding::Deflate && sink.len() == 0 {
                        let mut raw = flate2::write::DeflateDecoder::new(sink.clone());
                        raw.write_all(&data)?;
                        *dec = Some(Dec::Raw(raw));
                    } else {
                        r?;
                    }
                }
                if finish {
                    if let Some(d) = dec.take() {
                        d.finish()?;
                    }
                }
            }
            data = sink.take();
            if data.len() as u64 > self.limit {
                return Err(std::io::Error::other("decoded body too large"));
            }
        }
        self.count(data.len())?;
        out.extend_from_slice(&data);
        Ok(())
    }

    fn count(&mut self, n: usize) -> std::io::Result<()> {
        self.produced += n as u64;
        if self.produced > self.limit {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "decoded body too large",
            ));
        }
        Ok(())
    }
}

/// Decodes a whole body. `Err(true)` when the decoded size is over `limit`.
pub fn decode_all(codings: &[Coding], body: &[u8], limit: u64) -> Result<Vec<u8>, bool> {
    let mut d = Decoder::new(codings, limit).map_err(|_| false)?;
    let mut out = Vec::with_capacity(body.len());
    let r = d.feed(body, &mut out).and_then(|_| d.finish(&mut out));
    match r {
        Ok(()) => Ok(out),
        Err(e) if e.to_string().contains("too large") => Err(true),
        Err(_) => Err(false),
    }
}

/// Encodes (for tests and the demo).
pub fn encode(c: Coding, data: &[u8]) -> Vec<u8> {
    match c {
        Coding::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Coding::Deflate => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Coding::Br => {
            let mut out = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                w.write_all(data).unwrap();
            }
            out
        }
        Coding::Zstd => zstd::stream::encode_all(data, 1).unwrap(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_whole_and_streamed() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| format!("line {i} i-0123456789abcdef0\n").into_bytes())
            .collect();
        for c in [Coding::Gzip, Coding::Deflate, Coding::Br, Coding::Zstd] {
            let enc = encode(c, &data);
            assert_eq!(decode_all(&[c], &enc, u64::MAX).unwrap(), data, "{c:?}");
            let mut d = Decoder::new(&[c], u64::MAX).unwrap();
            let mut out = Vec::new();
            for chunk in enc.chunks(7) {
                d.feed(chunk, &mut out).unwrap();
            }
            d.finish(&mut out).unwrap();
            assert_eq!(out, data, "{c:?} streamed");
            assert_eq!(decode_all(&[c], &enc, 1000), Err(true), "{c:?} limit");
        }
        // Stacked: gzip then br.
        let enc = encode(Coding::Br, &encode(Coding::Gzip, &data));
        assert_eq!(decode_all(&[Coding::Gzip, Coding::Br], &enc, u64::MAX).unwrap(), data);
        // Raw deflate labelled deflate.
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&data).unwrap();
        assert_eq!(
            decode_all(&[Coding::Deflate], &e.finish().unwrap(), u64::MAX).unwrap(),
            data
        );
        assert!(decode_all(&[Coding::Gzip], b"not gzip", u64::MAX).is_err());
    }
}
