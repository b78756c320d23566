//! `maskgate mask`, `maskgate unmask`, `maskgate kinds`: the engine without a network.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex};

use maskgate_engine::{Masker, MaskerConfig, Plan, RequestMap, UnmaskStats};

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
    /// Tenant named in the mappings file (a run numbers its placeholders itself, from 001 per kind).
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

/// Text is masked in blocks cut at line ends, so the text held in memory does not grow with the input. A block
/// is validated as UTF-8, detected, searched for its values (propagation), rewritten, leak-checked and written:
/// six passes, which stay in a core's L2 cache at this size (with 1 MiB blocks they did not, and one core
/// needed 13 % more time).
const BLOCK: usize = 256 << 10;
/// A line longer than this is cut at its last separator (or hard, as a last resort).
const MAX_CARRY: usize = 8 << 20;
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
    let prefixes = Prefixes::new(&masker);
    let mut numbering = Numbering::new(&prefixes);
    let mut map = RequestMap::new();
    // Not locked for the whole run: the text path writes from worker threads (one at a time, in order). Not
    // buffered either: every write is a whole block (ending at a line end, so stdout's line buffer passes it
    // straight through), and a buffer would only copy it once more.
    let mut out = io::stdout();
    if args.json {
        let mut stdin = io::stdin().lock();
        let mut body = Vec::new();
        // From a file, room for all of it at once: reading into a buffer that doubles copies the body again and
        // again, and leaves up to twice its size allocated while it is masked. (A hint: the file may grow.)
        if let Some(m) = stdin_metadata().filter(|m| m.is_file()) {
            body.reserve_exact(usize::try_from(m.len()).unwrap_or(0).saturating_add(1));
        }
        stdin.read_to_end(&mut body).map_err(io_err("stdin"))?;
        let plan = masker
            .plan_json(&body)
            .map_err(|e| CliError::Input(format!("stdin: {e}")))?;
        let keys = prefixes.keys(&plan)?;
        let placeholders = placeholders(&plan, &numbering.number(&plan, &keys));
        let masked = plan.finish(&placeholders).map_err(masking_failed)?;
        out.write_all(&masked.body).map_err(io_err("stdout"))?;
        map.extend(masked.map);
    } else {
        let threads = args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .clamp(1, MAX_THREADS);
        let keep_map = args.mappings.is_some();
        let stdin = stdin_type();
        let line = Pipeline {
            masker: &masker,
            prefixes: &prefixes,
            numbering: Mutex::new(&mut numbering),
            keep_map,
            read_ahead: stdin.is_some_and(|t| t.is_file()),
            state: Mutex::new(Turns::default()),
            turn: Condvar::new(),
            out: Mutex::new((&mut out, &mut map)),
        };
        if stdin.is_some_and(|t| t.is_fifo()) {
            widen_stdin_pipe();
        }
        line.run(io::stdin(), threads)?;
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
    // The process ends next: freeing the placeholder table entry by entry and the detector's caches took about
    // 4 % of a run's CPU (perf), for memory the exit returns anyway.
    std::mem::forget(numbering);
    std::mem::forget(masker);
    Ok(())
}

/// The placeholder table of one `maskgate mask` run: the same value of the same kind gets the same placeholder
/// throughout the input, numbered per kind in order of first appearance — what the gateway's vault does for a
/// tenant, without what a long-lived shared store needs (a TTL, a bound with eviction, a reverse index, keys
/// spelling out the tenant). A run is one process: nothing expires, and nothing may be evicted, or a value seen
/// again after its eviction would come out under a second placeholder. Memory grows with the distinct values
/// (the value and a number each); the mappings file holds all of them anyway.
struct Numbering {
    /// Every value numbered, one after another (table entries say where).
    values: String,
    /// One per placeholder prefix, in the order of [`Prefixes`].
    kinds: Vec<KindNumbers>,
}

#[derive(Default)]
struct KindNumbers {
    /// The values numbered so far: `(hash, start in Numbering::values, end, number)`.
    table: hashbrown::HashTable<(u64, usize, usize, u64)>,
    /// The last number handed out.
    last: u64,
}

/// The placeholder prefixes of the masker's kinds, each with its place in [`Numbering::kinds`], and the hasher
/// of values: read-only, so that where a plan's values go is worked out outside the numbering's turn
/// ([`Prefixes::keys`]), and the turn only probes and inserts.
struct Prefixes {
    index: foldhash::HashMap<Box<str>, usize>,
    hasher: foldhash::fast::RandomState,
}

impl Prefixes {
    fn new(masker: &Masker) -> Self {
        let mut index = foldhash::HashMap::default();
        for k in masker.detector().kinds() {
            let next = index.len();
            index.entry(k.prefix.as_str().into()).or_insert(next);
        }
        Prefixes {
            index,
            hasher: Default::default(),
        }
    }

    /// The kind (in [`Numbering::kinds`]) and hash of each of a plan's values.
    fn keys(&self, plan: &Plan) -> Result<Vec<(usize, u64)>, CliError> {
        use std::hash::BuildHasher;
        plan.entries()
            .iter()
            .map(|e| match self.index.get(e.prefix) {
                Some(&k) => Ok((k, self.hasher.hash_one(e.original.as_bytes()))),
                None => Err(CliError::Io(
                    "masking failed: a value of a kind the masker does not list".into(),
                )),
            })
            .collect()
    }
}

impl Numbering {
    fn new(prefixes: &Prefixes) -> Self {
        Numbering {
            values: String::new(),
            kinds: (0..prefixes.index.len()).map(|_| KindNumbers::default()).collect(),
        }
    }

    /// The numbers of a plan's values, in the order of its entries (`keys` from [`Prefixes::keys`]): the only
    /// step that must follow the input.
    fn number(&mut self, plan: &Plan, keys: &[(usize, u64)]) -> Vec<u64> {
        let values = &mut self.values;
        plan.entries()
            .iter()
            .zip(keys)
            .map(|(e, &(k, hash))| {
                let kind = &mut self.kinds[k];
                let v = e.original.as_ref();
                if let Some(&(_, _, _, n)) = kind.table.find(hash, |&(h, a, b, _)| h == hash && values[a..b] == *v) {
                    return n;
                }
                kind.last += 1;
                let start = values.len();
                values.push_str(v);
                kind.table
                    .insert_unique(hash, (hash, start, values.len(), kind.last), |t| t.0);
                kind.last
            })
            .collect()
    }
}

/// The placeholders of a plan's values, from their numbers (formatted outside the numbering's turn).
fn placeholders(plan: &Plan, numbers: &[u64]) -> Vec<String> {
    plan.entries()
        .iter()
        .zip(numbers)
        .map(|(e, &n)| maskgate_engine::placeholder::format(e.prefix, n))
        .collect()
}

fn masking_failed(e: maskgate_engine::MaskError) -> CliError {
    CliError::Io(format!("masking failed: {e}"))
}

/// Where the block at the start of `buf` ends: after the last line end in the next [`BLOCK`] bytes; a longer line
/// ends at its line end, or is cut after its last whitespace (hard, at a character boundary, as a last resort)
/// when it exceeds [`MAX_CARRY`]. `None` when `buf` does not hold enough to tell. `clear`: how many leading bytes
/// of `buf` are known to hold no line end (0 for a new block), so that a long line, asked about again after
/// every read, is searched once rather than from its start each time.
fn next_cut(buf: &[u8], eof: bool, clear: &mut usize) -> Option<usize> {
    if eof && buf.len() <= BLOCK {
        return Some(buf.len());
    }
    if buf.len() < BLOCK {
        return None;
    }
    if *clear < BLOCK {
        if let Some(nl) = memchr::memrchr(b'\n', &buf[..BLOCK]) {
            return Some(nl + 1);
        }
    }
    let far = buf.len().min(MAX_CARRY);
    let from = (*clear).max(BLOCK).min(far);
    if let Some(nl) = memchr::memchr(b'\n', &buf[from..far]) {
        return Some(from + nl + 1);
    }
    *clear = far;
    if buf.len() >= MAX_CARRY {
        let line = &buf[..MAX_CARRY];
        let cut = match line.iter().rposition(|c| c.is_ascii_whitespace()) {
            Some(ws) => ws + 1,
            // Back to the start of the character the cut would split.
            None => (0..MAX_CARRY)
                .rev()
                .find(|&i| line[i] & 0xC0 != 0x80)
                .filter(|&i| i > 0)
                .unwrap_or(MAX_CARRY),
        };
        return Some(cut);
    }
    if eof {
        return Some(buf.len());
    }
    None
}

/// One block of the input, cut at a line end by [`next_cut`].
struct Part {
    /// Its place in the input: placeholders are numbered, and blocks written, in this order.
    index: usize,
    /// Where it starts in the input (for error messages).
    offset: usize,
    bytes: Vec<u8>,
}

/// Whose turn it is to assign placeholders and to write, and the first failure.
#[derive(Default)]
struct Turns {
    next_assign: usize,
    next_write: usize,
    /// The failure of the earliest block that failed: blocks after it are dropped, blocks before it finish.
    failed: Option<(usize, CliError)>,
}

impl Turns {
    /// True when a block before `index` failed: that one is dropped.
    fn failed_before(&self, index: usize) -> bool {
        self.failed.as_ref().is_some_and(|(k, _)| *k < index)
    }
}

/// What stdin is (`None` when it cannot be told).
fn stdin_type() -> Option<std::fs::FileType> {
    Some(stdin_metadata()?.file_type())
}

fn stdin_metadata() -> Option<std::fs::Metadata> {
    use std::os::fd::AsFd;
    let fd = io::stdin().as_fd().try_clone_to_owned().ok()?;
    std::fs::File::from(fd).metadata().ok()
}

/// Asks for a 1 MiB buffer on the pipe stdin is (Linux's default limit for a user; 64 KiB otherwise), so that the
/// producer writes ahead while the workers mask, with fewer wake-ups on both sides. Best effort.
fn widen_stdin_pipe() {
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl on a descriptor this process holds; it touches no memory.
    unsafe { libc::fcntl(io::stdin().as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
}

/// The input, cut into blocks on demand: the worker that needs a block reads it, under a lock. (A reader thread
/// of its own, woken when a worker took a block, could wait milliseconds for a CPU that the workers held, and the
/// workers then waited for it: 16-30 ms of a ~160 ms run on two CPUs, in stalls of up to 4 ms.)
struct Source<R> {
    input: R,
    /// The bytes read past the last cut: the start of the next block.
    carry: Vec<u8>,
    /// How many leading bytes of `carry` hold no line end (see [`next_cut`]).
    clear: usize,
    index: usize,
    offset: usize,
    eof: bool,
    /// Block buffers given back by the workers, so that steady state allocates (and faults in) nothing.
    spare: Vec<Vec<u8>>,
}

impl<R: Read> Source<R> {
    fn new(input: R) -> Self {
        Source {
            input,
            carry: Vec::with_capacity(BLOCK),
            clear: 0,
            index: 0,
            offset: 0,
            eof: false,
            spare: Vec::new(),
        }
    }

    /// The next block: reads until it holds a block (or the end), cuts, and keeps what follows the cut (the part
    /// of a line) for the next one. `None` at the end; a read error is returned with the index of the block it
    /// would have been, and ends the input.
    fn next(&mut self) -> Result<Option<Part>, (usize, CliError)> {
        let mut want = BLOCK;
        loop {
            while !self.eof && self.carry.len() < want {
                // Into the spare capacity: nothing is zeroed first.
                let room = (want - self.carry.len()) as u64;
                match read_up_to(&mut self.input, room, &mut self.carry) {
                    Ok(n) => self.eof = n == 0,
                    Err(e) => {
                        (self.eof, self.carry) = (true, Vec::new());
                        return Err((self.index, CliError::Io(format!("stdin: {e}"))));
                    }
                }
            }
            // Blocks are cut by a rule that depends neither on the number of threads nor on read sizes, so
            // neither changes the output.
            let cut = match next_cut(&self.carry, self.eof, &mut self.clear) {
                Some(c) if c > 0 => c,
                _ if self.eof => return Ok(None),
                _ => {
                    want = self.carry.len() + BLOCK;
                    continue;
                }
            };
            let mut next = self.spare.pop().unwrap_or_default();
            next.clear();
            next.reserve(BLOCK);
            next.extend_from_slice(&self.carry[cut..]);
            self.carry.truncate(cut);
            self.clear = 0;
            let part = Part {
                index: self.index,
                offset: self.offset,
                bytes: std::mem::replace(&mut self.carry, next),
            };
            self.index += 1;
            self.offset += cut;
            return Ok(Some(part));
        }
    }
}

/// `maskgate mask` on text: workers take blocks of the input in turn ([`Source`]), detect and rewrite them in
/// parallel, and take turns, in input order, for the two steps whose order shows: assigning placeholders
/// (numbering) and writing. A worker waiting for its turn holds no core, so the serial steps overlap with the
/// other workers' detection; a worker whose block is not yet due to be numbered detects its next block
/// meanwhile. Memory stays bounded by the blocks in flight (at most two per worker).
struct Pipeline<'a, W: Write> {
    masker: &'a Masker,
    prefixes: &'a Prefixes,
    numbering: Mutex<&'a mut Numbering>,
    keep_map: bool,
    /// Whether a worker may read a second block while its first is not due: only when reads do not wait for a
    /// producer (a regular file). From a pipe, that read could hold a finished block back until the producer
    /// wrote another block's worth.
    read_ahead: bool,
    state: Mutex<Turns>,
    turn: Condvar,
    out: Mutex<(&'a mut W, &'a mut RequestMap)>,
}

impl<W: Write + Send> Pipeline<'_, W> {
    fn run(&self, input: impl Read + Send, threads: usize) -> Result<(), CliError> {
        let source = Mutex::new(Source::new(input));
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    let mut body = Vec::new();
                    while let Some(a) = self.take(&source) {
                        let planned_a = self.plan(&a);
                        // Not this block's turn to be numbered yet (the block before it is still being
                        // detected, or its worker lost its CPU for a while): detect the next block meanwhile,
                        // instead of waiting idle. Each worker finishes its blocks in input order, so the
                        // earliest unfinished block's worker never waits.
                        let b = match &planned_a {
                            Some(_) if self.read_ahead && !self.turn_now(a.index) => self.take(&source),
                            _ => None,
                        };
                        let planned_b = b.as_ref().and_then(|b| self.plan(b));
                        for (part, planned) in [(Some(&a), planned_a), (b.as_ref(), planned_b)] {
                            if let (Some(part), Some((plan, keys))) = (part, planned) {
                                self.finish(part.index, plan, &keys, &mut body);
                            }
                        }
                        let mut src = lock(&source);
                        src.spare.push(a.bytes);
                        src.spare.extend(b.map(|b| b.bytes));
                    }
                });
            }
        });
        match lock(&self.state).failed.take() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// The next block of the input; `None` at its end, after a read error (recorded), or once a block failed
    /// (later blocks would be dropped: reading stops).
    fn take<R: Read>(&self, source: &Mutex<Source<R>>) -> Option<Part> {
        let mut src = lock(source);
        if lock(&self.state).failed.is_some() {
            return None;
        }
        match src.next() {
            Ok(p) => p,
            Err((index, e)) => {
                self.fail(index, e);
                None
            }
        }
    }

    /// True when block `index` may be numbered now.
    fn turn_now(&self, index: usize) -> bool {
        lock(&self.state).next_assign == index
    }

    /// Validates and plans one block, with the numbering keys of its values; `None` when it failed (recorded)
    /// or comes after a block that failed.
    fn plan<'p>(&'p self, part: &'p Part) -> Option<(Plan<'p>, Vec<(usize, u64)>)> {
        let index = part.index;
        if self.gave_up(index) {
            return None;
        }
        // simdutf8: the same answer as `std::str::from_utf8`, several times faster on mostly-ASCII text.
        let text = match simdutf8::compat::from_utf8(&part.bytes) {
            Ok(t) => t,
            Err(e) => {
                let at = part.offset + e.valid_up_to();
                self.fail(index, CliError::Input(format!("stdin is not valid UTF-8 at byte {at}")));
                return None;
            }
        };
        let plan = self.masker.plan_text(text);
        match self.prefixes.keys(&plan) {
            Ok(keys) => Some((plan, keys)),
            Err(e) => {
                self.fail(index, e);
                None
            }
        }
    }

    /// Numbers a planned block's values in its turn, rewrites it into `body`, and writes it in its turn.
    fn finish(&self, index: usize, plan: Plan, keys: &[(usize, u64)], body: &mut Vec<u8>) {
        // Numbering follows the input: wait for the blocks before this one.
        if !self.wait_turn(index, |t| t.next_assign) {
            return;
        }
        let numbers = lock(&self.numbering).number(&plan, keys);
        self.pass_turn(|t| &mut t.next_assign);
        let placeholders = placeholders(&plan, &numbers);
        let mut part_map = self.keep_map.then(RequestMap::new);
        if let Err(e) = plan.finish_into(&placeholders, body, part_map.as_mut()) {
            self.fail(index, masking_failed(e));
            return;
        }
        if !self.wait_turn(index, |t| t.next_write) {
            return;
        }
        let written = {
            let mut out = lock(&self.out);
            if let Some(m) = part_map {
                out.1.extend(m);
            }
            out.0.write_all(body)
        };
        self.pass_turn(|t| &mut t.next_write);
        if let Err(e) = written {
            self.fail(index, CliError::Io(format!("stdout: {e}")));
        }
    }

    /// Waits until `turn` reaches block `index`; false when an earlier block failed (this one is dropped).
    fn wait_turn(&self, index: usize, turn: impl Fn(&Turns) -> usize) -> bool {
        let mut t = lock(&self.state);
        loop {
            if t.failed_before(index) {
                return false;
            }
            if turn(&t) == index {
                return true;
            }
            t = self.turn.wait(t).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn pass_turn(&self, turn: impl Fn(&mut Turns) -> &mut usize) {
        *turn(&mut lock(&self.state)) += 1;
        self.turn.notify_all();
    }

    /// Records the failure of block `index`, unless an earlier block failed already.
    fn fail(&self, index: usize, e: CliError) {
        let mut t = lock(&self.state);
        if t.failed.as_ref().is_none_or(|(k, _)| index < *k) {
            t.failed = Some((index, e));
        }
        drop(t);
        self.turn.notify_all();
    }

    /// True when a block before `index` failed: this one will not be written.
    fn gave_up(&self, index: usize) -> bool {
        lock(&self.state).failed_before(index)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
        map.insert(&p, &o);
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
