//! `maskgate mask`, `maskgate unmask`, `maskgate kinds`: the engine without a network.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;

use maskgate_engine::{Masker, MaskerConfig, RequestMap, UnmaskStats};
use maskgate_vault::{Entry, MemoryVault, MemoryVaultConfig};

/// A failure with a message for the user (never an original value) and an exit code.
#[derive(Debug)]
pub enum CliError {
    /// Bad input or arguments: exit 2.
    Input(String),
    /// I/O: exit 1.
    Io(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Input(_) => 2,
            CliError::Io(_) => 1,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Input(m) | CliError::Io(m) => f.write_str(m),
        }
    }
}

fn io_err(what: &str) -> impl Fn(io::Error) -> CliError + '_ {
    move |e| CliError::Io(format!("{what}: {e}"))
}

#[derive(clap::Args)]
pub struct MaskArgs {
    /// Treat stdin as one JSON request body (every string value and key is masked).
    #[arg(long)]
    json: bool,
    /// Tenant whose placeholder numbering is used.
    #[arg(long, default_value = "default")]
    tenant: String,
    /// Write the placeholder table (placeholder → original) to this file, as JSON.
    #[arg(long)]
    mappings: Option<PathBuf>,
    /// Masking settings (TOML with the keys of the gateway's `[masking]` table).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct UnmaskArgs {
    /// The mappings file written by `maskgate mask --mappings`.
    #[arg(long)]
    mappings: PathBuf,
    /// Treat stdin as a JSON document (restored values are JSON-escaped).
    #[arg(long)]
    json: bool,
}

/// The mappings file.
#[derive(serde::Serialize, serde::Deserialize)]
struct MappingsFile {
    tenant: String,
    mappings: BTreeMap<String, String>,
}

/// Text is masked in blocks cut at line ends, so memory does not grow with the input.
const BLOCK: usize = 1 << 20;
/// A line longer than this is cut at its last separator (or hard, as a last resort).
const MAX_CARRY: usize = 8 << 20;

fn load_config(path: &Option<PathBuf>) -> Result<MaskerConfig, CliError> {
    let Some(path) = path else {
        return Ok(MaskerConfig::default());
    };
    let text = std::fs::read_to_string(path).map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| CliError::Input(format!("{}: {e}", path.display())))
}

pub fn mask(args: MaskArgs) -> Result<(), CliError> {
    let config = load_config(&args.config)?;
    let masker = Masker::new(&config).map_err(|e| CliError::Input(format!("configuration: {e}")))?;
    let vault = MemoryVault::new(MemoryVaultConfig::default());
    let mut map = RequestMap::new();
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
    let mut stdin = io::stdin().lock();

    let mut run = |text_or_json: Result<&str, &[u8]>, out: &mut dyn Write| -> Result<(), CliError> {
        let plan = match text_or_json {
            Ok(text) => masker.plan_text(text),
            Err(json) => masker
                .plan_json(json)
                .map_err(|e| CliError::Input(format!("stdin: {e}")))?,
        };
        let entries: Vec<Entry> = plan
            .entries()
            .iter()
            .map(|e| Entry {
                prefix: &e.prefix,
                original: &e.original,
            })
            .collect();
        let placeholders = vault
            .assign_now(&args.tenant, &entries)
            .map_err(|e| CliError::Io(e.to_string()))?;
        let masked = plan
            .finish(&placeholders)
            .map_err(|e| CliError::Io(format!("masking failed: {e}")))?;
        out.write_all(&masked.body).map_err(io_err("stdout"))?;
        if args.mappings.is_some() {
            map.extend(masked.map);
        }
        Ok(())
    };

    if args.json {
        let mut body = Vec::new();
        stdin.read_to_end(&mut body).map_err(io_err("stdin"))?;
        run(Err(&body), &mut out)?;
    } else {
        let mut buf: Vec<u8> = Vec::with_capacity(BLOCK * 2);
        let mut offset = 0usize; // bytes of stdin already written out
        let mut eof = false;
        while !eof {
            let before = buf.len();
            buf.resize(before + BLOCK, 0);
            let n = read_full(&mut stdin, &mut buf[before..]).map_err(io_err("stdin"))?;
            buf.truncate(before + n);
            eof = n == 0;
            let cut = if eof {
                buf.len()
            } else if let Some(nl) = memchr::memrchr(b'\n', &buf) {
                nl + 1
            } else if buf.len() >= MAX_CARRY {
                buf.iter()
                    .rposition(|c| c.is_ascii_whitespace())
                    .map(|p| p + 1)
                    .unwrap_or(buf.len())
            } else {
                continue;
            };
            let block = &buf[..cut];
            // Only cut on a UTF-8 boundary: a hard cut may split a character; keep its start for the next block.
            let (text, valid) = match std::str::from_utf8(block) {
                Ok(t) => (t, cut),
                Err(e) if e.error_len().is_none() && !eof => {
                    let v = e.valid_up_to();
                    (std::str::from_utf8(&block[..v]).unwrap_or_default(), v)
                }
                Err(e) => {
                    return Err(CliError::Input(format!(
                        "stdin is not valid UTF-8 at byte {}",
                        offset + e.valid_up_to()
                    )));
                }
            };
            run(Ok(text), &mut out)?;
            offset += valid;
            buf.drain(..valid);
        }
    }
    out.flush().map_err(io_err("stdout"))?;
    if let Some(path) = &args.mappings {
        let file = MappingsFile {
            tenant: args.tenant.clone(),
            mappings: map.iter().map(|(p, o)| (p.to_string(), o.to_string())).collect(),
        };
        let json = serde_json::to_vec_pretty(&file).map_err(|e| CliError::Io(e.to_string()))?;
        write_private(path, &json).map_err(|e| CliError::Io(format!("{}: {e}", path.display())))?;
    }
    Ok(())
}

/// The mappings hold originals: the file is readable by its owner only.
fn write_private(path: &std::path::Path, data: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

pub fn unmask(args: UnmaskArgs) -> Result<(), CliError> {
    let text =
        std::fs::read(&args.mappings).map_err(|e| CliError::Input(format!("{}: {e}", args.mappings.display())))?;
    let file: MappingsFile = serde_json::from_slice(&text)
        .map_err(|e| CliError::Input(format!("{}: not a mappings file: {e}", args.mappings.display())))?;
    let mut map = RequestMap::new();
    for (p, o) in file.mappings {
        if !maskgate_engine::placeholder::is_placeholder(&p) {
            return Err(CliError::Input(format!(
                "{}: {p:?} is not a placeholder",
                args.mappings.display()
            )));
        }
        map.insert(p, o);
    }
    let mut input = Vec::new();
    io::stdin().lock().read_to_end(&mut input).map_err(io_err("stdin"))?;
    let mut stats = UnmaskStats::default();
    let out = if args.json {
        maskgate_engine::unmask::unmask_json(&input, &map, &mut stats)
            .map_err(|e| CliError::Input(format!("stdin: {e}")))?
    } else {
        let text = std::str::from_utf8(&input)
            .map_err(|e| CliError::Input(format!("stdin is not valid UTF-8 at byte {}", e.valid_up_to())))?;
        maskgate_engine::unmask::unmask_text(text, &map, &mut stats)
            .into_owned()
            .into_bytes()
    };
    let mut stdout = io::stdout().lock();
    stdout.write_all(&out).map_err(io_err("stdout"))?;
    stdout.flush().map_err(io_err("stdout"))?;
    if stats.misses > 0 {
        eprintln!(
            "maskgate: {} placeholder(s) had no mapping and were left as they are",
            stats.misses
        );
    }
    Ok(())
}

pub fn kinds() -> Result<(), CliError> {
    let d = maskgate_engine::Detector::default();
    let mut out = io::stdout().lock();
    for k in d.kinds() {
        writeln!(out, "{:<28} {:<26} {:?}", k.name, k.prefix, k.tier).map_err(io_err("stdout"))?;
    }
    Ok(())
}
