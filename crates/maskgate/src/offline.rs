//! `maskgate mask`, `maskgate unmask`, `maskgate kinds`: the engine without a network.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;

use maskgate_engine::{Masker, MaskerConfig, Plan, RequestMap, UnmaskStats};
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
    /// Threads that detect in parallel (default: the CPUs available, at most 8). Output and numbering do not
    /// depend on it.
    #[arg(long)]
    threads: Option<usize>,
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
/// Read beyond the blocks of one round, so that the last block's end is known (a block ends at the last line
/// end in its first [`BLOCK`] bytes) and only a little is carried over to the next round.
const SLACK: usize = 64 << 10;
/// Most threads `maskgate mask` uses.
const MAX_THREADS: usize = 8;

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

    // Placeholders are numbered in input order: plans are assigned one after another, in order.
    let assign = |plan: &Plan| -> Result<Vec<String>, CliError> {
        let entries: Vec<Entry> = plan
            .entries()
            .iter()
            .map(|e| Entry {
                prefix: e.prefix,
                original: &e.original,
            })
            .collect();
        vault
            .assign_now(&args.tenant, &entries)
            .map_err(|e| CliError::Io(e.to_string()))
    };
    let finish = |plan: Plan, placeholders: &[String]| {
        plan.finish(placeholders)
            .map_err(|e| CliError::Io(format!("masking failed: {e}")))
    };

    if args.json {
        let mut body = Vec::new();
        stdin.read_to_end(&mut body).map_err(io_err("stdin"))?;
        let plan = masker
            .plan_json(&body)
            .map_err(|e| CliError::Input(format!("stdin: {e}")))?;
        let placeholders = assign(&plan)?;
        let masked = finish(plan, &placeholders)?;
        out.write_all(&masked.body).map_err(io_err("stdout"))?;
        map.extend(masked.map);
    } else {
        let threads = args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .clamp(1, MAX_THREADS);
        let mut buf: Vec<u8> = Vec::with_capacity(BLOCK * threads + SLACK);
        // One output buffer per block of a round, kept from round to round.
        let mut outs: Vec<Vec<u8>> = (0..threads).map(|_| Vec::new()).collect();
        let keep_map = args.mappings.is_some();
        let mut offset = 0usize; // bytes of stdin already written out
        let mut eof = false;
        let mut want = BLOCK * threads + SLACK;
        loop {
            while !eof && buf.len() < want {
                // Into the spare capacity: nothing is zeroed first.
                let room = (want - buf.len()) as u64;
                let n = read_up_to(&mut stdin, room, &mut buf).map_err(io_err("stdin"))?;
                eof = n == 0;
            }
            // Blocks are cut by a rule that does not depend on the number of threads or on read sizes, so
            // neither changes the output.
            let mut cuts = Vec::with_capacity(threads);
            let mut p = 0;
            while cuts.len() < threads {
                match next_cut(&buf, p, eof) {
                    Some(c) if c > p => {
                        cuts.push(c);
                        p = c;
                    }
                    _ => break,
                }
            }
            let Some(&end) = cuts.last() else {
                if eof {
                    break;
                }
                want = buf.len() + BLOCK;
                continue;
            };
            want = BLOCK * threads + SLACK;
            let mut parts = Vec::with_capacity(cuts.len());
            let mut from = 0;
            for &c in &cuts {
                parts.push((from, &buf[from..c]));
                from = c;
            }
            // Plan (detection, the bulk of the work) in parallel, assign in input order, finish in parallel.
            let plans = parallel(parts, |(at, part)| match std::str::from_utf8(part) {
                Ok(text) => Ok(masker.plan_text(text)),
                Err(e) => Err(at + e.valid_up_to()),
            });
            let mut jobs = Vec::with_capacity(plans.len());
            for plan in plans {
                let plan =
                    plan.map_err(|at| CliError::Input(format!("stdin is not valid UTF-8 at byte {}", offset + at)))?;
                let placeholders = assign(&plan)?;
                jobs.push((plan, placeholders));
            }
            let jobs: Vec<_> = jobs.into_iter().zip(outs.iter_mut()).collect();
            let finished = parallel(jobs, |((plan, placeholders), body)| {
                let mut part_map = keep_map.then(RequestMap::new);
                plan.finish_into(&placeholders, body, part_map.as_mut())
                    .map(|_| part_map)
                    .map_err(|e| CliError::Io(format!("masking failed: {e}")))
            });
            for (part_map, body) in finished.into_iter().zip(&outs) {
                if let Some(m) = part_map? {
                    map.extend(m);
                }
                out.write_all(body).map_err(io_err("stdout"))?;
            }
            offset += end;
            buf.drain(..end);
        }
    }
    out.flush().map_err(io_err("stdout"))?;
    if let Some(path) = &args.mappings {
        let file = MappingsFile {
            tenant: args.tenant.clone(),
            mappings: map.iter().map(|(p, o)| (p.to_string(), o.to_string())).collect(),
        };
        let json = serde_json::to_vec_pretty(&file).map_err(|e| CliError::Io(e.to_string()))?;
        // The mappings hold originals: readable by their owner only.
        maskgate_sidecar::ca::write_private(path, &json)
            .map_err(|e| CliError::Io(format!("{}: {e}", path.display())))?;
    }
    Ok(())
}

/// Where the block that starts at `p` ends: after the last line end in the next [`BLOCK`] bytes; a longer line
/// ends at its line end, or is cut after its last whitespace (hard, at a character boundary, as a last resort)
/// when it exceeds [`MAX_CARRY`]. `None` when `buf` does not hold enough to tell.
fn next_cut(buf: &[u8], p: usize, eof: bool) -> Option<usize> {
    let rest = &buf[p..];
    if eof && rest.len() <= BLOCK {
        return Some(buf.len());
    }
    if rest.len() < BLOCK {
        return None;
    }
    if let Some(nl) = memchr::memrchr(b'\n', &rest[..BLOCK]) {
        return Some(p + nl + 1);
    }
    let far = rest.len().min(MAX_CARRY);
    if let Some(nl) = memchr::memchr(b'\n', &rest[BLOCK..far]) {
        return Some(p + BLOCK + nl + 1);
    }
    if rest.len() >= MAX_CARRY {
        let line = &rest[..MAX_CARRY];
        let cut = match line.iter().rposition(|c| c.is_ascii_whitespace()) {
            Some(ws) => ws + 1,
            // Back to the start of the character the cut would split.
            None => (0..MAX_CARRY)
                .rev()
                .find(|&i| line[i] & 0xC0 != 0x80)
                .filter(|&i| i > 0)
                .unwrap_or(MAX_CARRY),
        };
        return Some(p + cut);
    }
    if eof {
        return Some(buf.len());
    }
    None
}

/// `f` over `items`, one thread per item (the calling thread takes the first), results in order.
fn parallel<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let mut items = items.into_iter();
    let Some(first) = items.next() else {
        return Vec::new();
    };
    if items.len() == 0 {
        return vec![f(first)];
    }
    std::thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> = items.map(|it| s.spawn(move || f(it))).collect();
        let mut out = Vec::with_capacity(handles.len() + 1);
        out.push(f(first));
        for h in handles {
            match h.join() {
                Ok(r) => out.push(r),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

/// Appends up to `limit` bytes of `r` to `buf` (fewer only at the end of the input).
fn read_up_to(r: &mut impl Read, limit: u64, buf: &mut Vec<u8>) -> io::Result<usize> {
    r.take(limit).read_to_end(buf)
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
