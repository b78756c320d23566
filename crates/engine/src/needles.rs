//! Finding many short literal needles (the originals of a request) in a text, fast, for propagation and for
//! the leak check.
//!
//! A masked request has hundreds of distinct originals, most of them random ids: a general multi-pattern
//! automaton has no prefilter for that many and runs a transition per byte. Here every needle of 7 bytes or
//! more is indexed by four of its 4-byte grams, one at an offset of each residue modulo 4: an occurrence at
//! `x` holds, at every multiple of 4 inside it, the gram of the needle at an offset `≡ -x (mod 4)`, so
//! whichever gram of that residue was indexed is seen. The text is probed once every 4 bytes (a bit filter,
//! then a small hash table); a hit is verified by comparing the needle. When every indexed needle has 11 bytes
//! or more (typical: instance ids, ARNs, most addresses), the same holds modulo 8 with eight grams per needle,
//! and the text is probed every 8 bytes: half the probes (one or two needles of 7 to 10 bytes among them, a
//! short address or a legacy instance id, are left out of the index rather than halving the stride). Of each
//! residue class the least shared gram is indexed, so ids with a common prefix do not pile up on one gram.
//!
//! When a gram would lead to too many needles (names with a long common part, `bucket-17-logs`,
//! `bucket-42-logs`, … share every gram of residue 2 modulo 8), the index probes every 4 bytes instead, where
//! each residue has twice the grams to choose from; failing that, the needles behind such a gram are left out.
//! The needles the index does not take (shorter than 7 bytes, the 7 to 10 byte ones left out, those behind an
//! overloaded gram, or all of them when the index still overflows, a request built to defeat it) are searched
//! one by one with `memmem` when there are at most two, else by an Aho-Corasick automaton.
//!
//! [`Needles::occurrences`] reports every occurrence, overlapping, like `find_overlapping_iter`; the callers
//! derive leftmost-longest selections or the first leak from it. Tested against `aho-corasick`.

use aho_corasick::{AhoCorasick, MatchKind};

/// The shortest needle the gram index finds (a gram of 4 at one of 4 offsets).
const MIN_INDEXED: usize = 7;

pub(crate) struct Needles<'a> {
    needles: Vec<&'a [u8]>,
    /// One bit per gram hash (of `32 - bloom_shift` bits): a cheap first test before the table (`None` only once
    /// dropped).
    bloom: Option<Vec<u64>>,
    /// `32 - ` the bloom's hash bits: 17 (16 KiB) up to 4,096 grams indexed, one more per doubling beyond, up to
    /// 20 (128 KiB), so that a block holding thousands of ids (dense ids, a megabytes-long line) does not fill it.
    /// (17, not 16, to start with: a 256 KiB block with ~125 ids made ~410 table lookups on false hits per pass
    /// with 16 bits, ~255 with 17.)
    bloom_shift: u32,
    /// Open-addressing table of grams: `slots[h] = (gram, first posting + 1)`, 0 = empty.
    slots: Vec<(u32, u32)>,
    shift: u32,
    /// `(needle, offset, next posting + 1)`: the needles holding a gram at an offset, chained.
    postings: Vec<(u32, u32, u32)>,
    /// How many needles each slot leads to (while building; kept for the next build).
    chain: Vec<u8>,
    /// The needles the index does not take (see the module's doc).
    rest: Rest,
    /// Probe eight grams at a time (the CPU has AVX2).
    avx2: bool,
    /// The text is probed every `stride` bytes: 8 when every indexed needle has 11 bytes or more (a gram of
    /// each residue modulo 8 fits in it), else 4.
    stride: usize,
}

/// The index's tables, kept for the next index built on the same thread: a request (or a block of
/// `maskgate mask`) builds two, and tables allocated afresh each time cost more in page faults and allocator
/// work than filling them.
#[derive(Default)]
struct Tables {
    bloom: Option<Vec<u64>>,
    slots: Vec<(u32, u32)>,
    postings: Vec<(u32, u32, u32)>,
    chain: Vec<u8>,
}

thread_local! {
    static SPARE: std::cell::Cell<Option<Tables>> = const { std::cell::Cell::new(None) };
}

impl Drop for Needles<'_> {
    fn drop(&mut self) {
        if self.bloom.is_none() {
            return; // moved on (see `detach`): nothing to keep
        }
        let tables = Tables {
            bloom: self.bloom.take(),
            slots: std::mem::take(&mut self.slots),
            postings: std::mem::take(&mut self.postings),
            chain: std::mem::take(&mut self.chain),
        };
        // Tables of a huge request are not worth keeping around.
        if tables.slots.capacity() <= 1 << 16 {
            SPARE.set(Some(tables));
        }
    }
}

/// An index kept apart from the needles it was built on (they are borrowed from values that move, such as a
/// plan's entries), to be attached to the same needles again: a request's propagation and its leak check
/// search for the same originals whenever propagation added none, and the index then is built once.
pub(crate) struct Detached {
    index: Needles<'static>,
    /// How many needles it was built on.
    count: usize,
}

impl<'a> Needles<'a> {
    pub(crate) fn detach(mut self) -> Detached {
        let count = self.needles.len();
        Detached {
            index: self.move_to(Vec::new()),
            count,
        }
    }

    /// The tables, over another needle list (`self` is left empty).
    fn move_to<'b>(&mut self, needles: Vec<&'b [u8]>) -> Needles<'b> {
        Needles {
            needles,
            bloom: self.bloom.take(),
            bloom_shift: self.bloom_shift,
            slots: std::mem::take(&mut self.slots),
            shift: self.shift,
            postings: std::mem::take(&mut self.postings),
            chain: std::mem::take(&mut self.chain),
            rest: std::mem::replace(&mut self.rest, Rest::None),
            avx2: self.avx2,
            stride: self.stride,
        }
    }
}

impl Detached {
    /// The index over `needles`: the list it was built on, the same bytes in the same order (the index holds
    /// positions in the list and offsets in each needle). The caller knows it is; the count is checked.
    pub(crate) fn attach<'b>(mut self, needles: Vec<&'b [u8]>) -> Needles<'b> {
        assert_eq!(
            needles.len(),
            self.count,
            "an index attached to other needles than its own"
        );
        self.index.move_to(needles)
    }
}

/// The most needles one gram may lead to (beyond it, see [`Needles::new`]).
const MAX_CHAIN: u8 = 32;
/// At most this many needles the index does not take are searched one by one, and at most this many of 7 to 10
/// bytes are left out of an index that then probes every 8 bytes. A `memmem` pass over a 256 KiB block costs
/// 7-13 µs; probing every 4 bytes instead of 8, ~35 µs; an automaton over two or more addresses sharing their
/// first bytes ran at 2.4 GB/s, slower than the index.
const MAX_ALONE: usize = 2;

/// The needles the index does not take, with their ids.
enum Rest {
    None,
    /// Searched one by one.
    Alone(Vec<(memchr::memmem::Finder<'static>, u32)>),
    /// An automaton over them.
    Automaton(AhoCorasick, Vec<u32>),
}

impl Rest {
    fn new(needles: &[&[u8]], ids: Vec<u32>) -> Rest {
        let alone = || {
            let finders = needles.iter().map(|n| memchr::memmem::Finder::new(n).into_owned());
            Rest::Alone(finders.zip(ids.iter().copied()).collect())
        };
        match needles.len() {
            0 => Rest::None,
            n if n <= MAX_ALONE => alone(),
            // One by one also if the automaton cannot be built.
            _ => match AhoCorasick::builder().match_kind(MatchKind::Standard).build(needles) {
                Ok(ac) => Rest::Automaton(ac, ids),
                Err(_) => alone(),
            },
        }
    }
}

/// One occurrence: `[start, end)` of needle `needle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Occurrence {
    pub start: usize,
    pub end: usize,
    pub needle: usize,
}

#[inline(always)]
fn bloom_bit(g: u32, shift: u32) -> usize {
    (g.wrapping_mul(BLOOM_MUL) >> shift) as usize
}

const BLOOM_MUL: u32 = 0x2545_f491;

/// The last eight bytes of `b` (all of them, zero-padded, when it is shorter).
#[inline(always)]
fn tail8(b: &[u8]) -> u64 {
    match b.len().checked_sub(8) {
        Some(at) => u64::from_le_bytes(b[at..].try_into().expect("eight bytes")),
        None => b.iter().fold(0, |v, &c| v << 8 | c as u64),
    }
}

#[inline(always)]
fn gram(b: &[u8], at: usize) -> u32 {
    match b[at..at + 4].try_into() {
        Ok(g) => u32::from_le_bytes(g),
        Err(_) => unreachable!(),
    }
}

impl<'a> Needles<'a> {
    pub(crate) fn new(needles: Vec<&'a [u8]>) -> Needles<'a> {
        // Every 8 bytes when every indexed needle has 11 bytes or more (one or two shorter ones, a short address
        // or a legacy instance id among many ids, are searched on their own instead: a memmem pass costs a fifth
        // of what probing every 4 bytes instead of 8 costs).
        let mids = needles
            .iter()
            .filter(|n| (MIN_INDEXED..8 + 3).contains(&n.len()))
            .count();
        let stride8 = mids <= MAX_ALONE && needles.iter().any(|n| n.len() >= 8 + 3);
        let spare = SPARE.take().unwrap_or_default();
        let mut t = Needles {
            needles,
            bloom: Some(spare.bloom.unwrap_or_default()),
            bloom_shift: 0,
            slots: spare.slots,
            shift: 0,
            postings: spare.postings,
            chain: spare.chain,
            rest: Rest::None,
            #[cfg(target_arch = "x86_64")]
            avx2: std::is_x86_feature_detected!("avx2"),
            #[cfg(not(target_arch = "x86_64"))]
            avx2: false,
            stride: if stride8 { 8 } else { 4 },
        };
        // A gram shared by more than `MAX_CHAIN` needles (ids with a long common part: in `bucket-17-logs`,
        // `bucket-42-logs`, … every gram of residue 2 modulo 8 is shared) would make each probe hit on it walk
        // a long chain. Every 4 bytes, each residue has twice the grams to choose from (`-17-` is one of
        // residue 2 modulo 4): that costs a probe pass twice as long, an automaton over every needle ~30 times.
        // Beyond that, the needles behind such a gram, and only those, go to the automaton with the short ones.
        // Should the index built without them still overflow (the greedy choice of grams can differ), every
        // needle does.
        let mut out = vec![false; t.needles.len()];
        let mut worst = t.index(&out);
        if worst > MAX_CHAIN && t.stride == 8 {
            t.stride = 4;
            worst = t.index(&out);
        }
        if worst > MAX_CHAIN {
            for (slot, &c) in t.chain.iter().enumerate() {
                if c > MAX_CHAIN {
                    let mut post = t.slots[slot].1;
                    while post != 0 {
                        let (needle, _, next) = t.postings[post as usize - 1];
                        out[needle as usize] = true;
                        post = next;
                    }
                }
            }
            if t.index(&out) > MAX_CHAIN {
                out.fill(true);
                t.index(&out);
            }
        }
        // The needles the index does not take: short ones and those left out above.
        let min_indexed = t.min_indexed();
        let (mut rest, mut rest_ids) = (Vec::new(), Vec::new());
        for (i, n) in t.needles.iter().enumerate() {
            if !n.is_empty() && (n.len() < min_indexed || out[i]) {
                rest.push(*n);
                rest_ids.push(i as u32);
            }
        }
        t.rest = Rest::new(&rest, rest_ids);
        t
    }

    /// The shortest needle indexed at this stride (a gram of each residue fits in it).
    fn min_indexed(&self) -> usize {
        if self.stride == 8 {
            8 + 3
        } else {
            MIN_INDEXED
        }
    }

    /// Indexes, afresh, every needle of [`Needles::min_indexed`] bytes or more that `out` does not leave out, by
    /// one gram of each residue (the least shared one); returns the longest chain of needles behind one gram.
    fn index(&mut self, out: &[bool]) -> u8 {
        let (stride, min_indexed) = (self.stride, self.min_indexed());
        let long = (self.needles.iter().zip(out))
            .filter(|(n, out)| n.len() >= min_indexed && !**out)
            .count();
        // Two slots or more per gram indexed: probe sequences stay short, and the tables cleared for every index
        // (9 bytes a slot) stay small when a block holds thousands of ids.
        let cap = (long * stride * 2).next_power_of_two().max(16);
        let grams = long * stride;
        let bloom_bits = (17 + grams.div_ceil(4096).next_power_of_two().trailing_zeros()).min(20);
        let bloom = self
            .bloom
            .as_mut()
            .expect("the bloom is only taken when the index is dropped");
        bloom.clear();
        bloom.resize(1 << (bloom_bits - 6), 0);
        self.bloom_shift = 32 - bloom_bits;
        self.slots.clear();
        self.slots.resize(cap, (0, 0));
        self.shift = 32 - cap.trailing_zeros();
        self.postings.clear();
        self.postings.reserve(grams);
        self.chain.clear();
        self.chain.resize(cap, 0);
        let mut worst = 0;
        for (i, &left_out) in out.iter().enumerate() {
            let n = self.needles[i];
            if n.len() < min_indexed || left_out {
                continue;
            }
            for r in 0..stride {
                // The offset of residue `r` whose gram leads to the fewest needles so far, from the last one
                // back (ids share prefixes, not ends), stopping at a gram that leads nowhere yet.
                let last = r + (n.len() - 4 - r) / stride * stride;
                let mut best: Option<(usize, u32, usize)> = None;
                for off in (0..=(last - r) / stride).map(|k| last - k * stride) {
                    let g = gram(n, off);
                    let slot = self.slot(g);
                    if best.is_none_or(|(b, _, _)| self.chain[slot] < self.chain[b]) {
                        best = Some((slot, g, off));
                        if self.chain[slot] == 0 {
                            break;
                        }
                    }
                }
                let (slot, g, off) = best.expect("a needle of 7 bytes has a gram of every residue");
                let head = self.slots[slot].1;
                self.postings.push((i as u32, off as u32, head));
                self.slots[slot] = (g, self.postings.len() as u32);
                self.chain[slot] = self.chain[slot].saturating_add(1);
                worst = worst.max(self.chain[slot]);
                let b = bloom_bit(g, self.bloom_shift);
                if let Some(bloom) = self.bloom.as_mut() {
                    bloom[b >> 6] |= 1 << (b & 63);
                }
            }
        }
        worst
    }

    #[inline(always)]
    fn bloom(&self) -> &[u64] {
        self.bloom
            .as_deref()
            .expect("the bloom is only taken when the index is dropped")
    }

    /// The slot of gram `g`: its own, or the empty one where it goes.
    #[inline(always)]
    fn slot(&self, g: u32) -> usize {
        let mask = self.slots.len() - 1;
        let mut h = (g.wrapping_mul(0x9e37_79b1) >> self.shift) as usize;
        loop {
            let (k, head) = self.slots[h];
            if head == 0 || k == g {
                return h;
            }
            h = (h + 1) & mask;
        }
    }

    /// Calls `f` for every occurrence of every needle in `hay` (overlapping), in no particular order; stops
    /// when `f` returns false.
    pub(crate) fn occurrences(&self, hay: &[u8], mut f: impl FnMut(Occurrence) -> bool) {
        if !self.postings.is_empty() && hay.len() >= 4 {
            let bloom = self.bloom();
            let mut p = 0;
            #[cfg(target_arch = "x86_64")]
            if self.avx2 {
                // SAFETY: the CPU supports AVX2 (checked when the index was built).
                match unsafe { self.probe_avx2(hay, &mut f) } {
                    Some(next) => p = next,
                    None => return,
                }
            }
            while p + 4 <= hay.len() {
                let g = gram(hay, p);
                let b = bloom_bit(g, self.bloom_shift);
                if bloom[b >> 6] >> (b & 63) & 1 != 0 && !self.at(hay, p, g, &mut f) {
                    return;
                }
                p += self.stride;
            }
        }
        match &self.rest {
            Rest::None => {}
            Rest::Alone(finders) => {
                for (finder, id) in finders {
                    let mut from = 0;
                    while let Some(at) = finder.find(&hay[from..]) {
                        let start = from + at;
                        let o = Occurrence {
                            start,
                            end: start + finder.needle().len(),
                            needle: *id as usize,
                        };
                        if !f(o) {
                            return;
                        }
                        // Overlapping occurrences too.
                        from = start + 1;
                    }
                }
            }
            Rest::Automaton(ac, ids) => {
                for m in ac.find_overlapping_iter(hay) {
                    let o = Occurrence {
                        start: m.start(),
                        end: m.end(),
                        needle: ids[m.pattern().as_usize()] as usize,
                    };
                    if !f(o) {
                        return;
                    }
                }
            }
        }
    }

    /// Probes the grams at multiples of the stride, eight at a time (32 or 64 bytes), as the scalar loop does:
    /// the same hash, the bloom read as 32-bit words (little-endian, so bit `b` is bit `b % 32` of word
    /// `b / 32`). Returns where the scalar loop goes on, or `None` when `f` asked to stop.
    ///
    /// # Safety
    /// The CPU supports AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn probe_avx2(&self, hay: &[u8], f: &mut impl FnMut(Occurrence) -> bool) -> Option<usize> {
        use std::arch::x86_64::*;
        let mul = _mm256_set1_epi32(BLOOM_MUL as i32);
        let low5 = _mm256_set1_epi32(31);
        let words = self.bloom().as_ptr() as *const i32;
        let shift = _mm_cvtsi32_si128(self.bloom_shift as i32);
        // Bytes per round, and the offset in the round of each lane's gram. Stride 8: lanes 0, 2, 4, 6 of two
        // 32-byte loads, interleaved by the shuffle as offsets 0, 8, 32, 40, 16, 24, 48, 56.
        let (round, at): (usize, [usize; 8]) = match self.stride {
            8 => (64, [0, 8, 32, 40, 16, 24, 48, 56]),
            _ => (32, [0, 4, 8, 12, 16, 20, 24, 28]),
        };
        let mut p = 0;
        while p + round <= hay.len() {
            // SAFETY: `p + round <= hay.len()`; unaligned loads.
            let v = unsafe {
                let v0 = _mm256_loadu_si256(hay.as_ptr().add(p) as *const __m256i);
                if round == 64 {
                    let v1 = _mm256_loadu_si256(hay.as_ptr().add(p + 32) as *const __m256i);
                    _mm256_castps_si256(_mm256_shuffle_ps::<0b10_00_10_00>(
                        _mm256_castsi256_ps(v0),
                        _mm256_castsi256_ps(v1),
                    ))
                } else {
                    v0
                }
            };
            let h = _mm256_srl_epi32(_mm256_mullo_epi32(v, mul), shift);
            // SAFETY: `h < 2^(32 - bloom_shift)`, so `h / 32` is a 32-bit word of the bloom.
            let w = unsafe { _mm256_i32gather_epi32::<4>(words, _mm256_srli_epi32(h, 5)) };
            let bit = _mm256_srlv_epi32(w, _mm256_and_si256(h, low5));
            let mut m = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_slli_epi32(bit, 31))) as u32;
            while m != 0 {
                let q = p + at[m.trailing_zeros() as usize];
                m &= m - 1;
                if !self.at(hay, q, gram(hay, q), f) {
                    return None;
                }
            }
            p += round;
        }
        Some(p)
    }

    /// The occurrences holding gram `g` at `p` (a multiple of the stride); false when `f` asked to stop.
    #[inline(never)]
    fn at(&self, hay: &[u8], p: usize, g: u32, f: &mut impl FnMut(Occurrence) -> bool) -> bool {
        let (k, mut post) = self.slots[self.slot(g)];
        if k != g {
            return true;
        }
        while post != 0 {
            let (needle, off, next) = self.postings[post as usize - 1];
            post = next;
            let n = self.needles[needle as usize];
            let off = off as usize;
            // The last eight bytes first, inline: needles behind one gram often share more than it (`-log` in
            // `bucket-17-logs`), and a copy call per candidate cost more than the walk.
            let candidate = p.checked_sub(off).and_then(|s| hay.get(s..s + n.len()));
            if candidate.is_some_and(|c| tail8(c) == tail8(n) && c == n) {
                let start = p - off;
                let o = Occurrence {
                    start,
                    end: start + n.len(),
                    needle: needle as usize,
                };
                if !f(o) {
                    return false;
                }
            }
        }
        true
    }

    /// Every occurrence, sorted by start, then longest first, then needle.
    #[cfg(test)]
    pub(crate) fn all(&self, hay: &[u8]) -> Vec<Occurrence> {
        let mut v = Vec::new();
        self.all_into(hay, &mut v);
        v
    }

    fn all_into(&self, hay: &[u8], v: &mut Vec<Occurrence>) {
        v.clear();
        self.occurrences(hay, |o| {
            v.push(o);
            true
        });
        v.sort_unstable_by(|a, b| {
            a.start
                .cmp(&b.start)
                .then(b.end.cmp(&a.end))
                .then(a.needle.cmp(&b.needle))
        });
    }

    /// The matches `aho-corasick` reports with `MatchKind::LeftmostLongest` (`find_iter`): from the left, the
    /// longest match at the earliest start (on a tie, the first needle), then on from its end. Into `out`.
    #[cfg(test)]
    pub(crate) fn leftmost_longest_into(&self, hay: &[u8], out: &mut Vec<Occurrence>) {
        self.leftmost_longest_where_into(hay, out, |_| true);
    }

    /// The leftmost-longest matches (as `aho-corasick` reports them with `MatchKind::LeftmostLongest`) among
    /// the occurrences that `within` accepts: the others hide nothing they overlap. Into `out`.
    pub(crate) fn leftmost_longest_where_into(
        &self,
        hay: &[u8],
        out: &mut Vec<Occurrence>,
        mut within: impl FnMut(&Occurrence) -> bool,
    ) {
        self.all_into(hay, out);
        let mut at = 0;
        out.retain(|o| {
            let keep = o.start >= at && within(o);
            if keep {
                at = o.end;
            }
            keep
        });
    }

    #[cfg(test)]
    pub(crate) fn leftmost_longest(&self, hay: &[u8]) -> Vec<Occurrence> {
        let mut v = Vec::new();
        self.leftmost_longest_into(hay, &mut v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference_overlapping(needles: &[Vec<u8>], hay: &[u8]) -> Vec<Occurrence> {
        let mut v: Vec<Occurrence> = Vec::new();
        for (i, n) in needles.iter().enumerate() {
            if n.is_empty() {
                continue;
            }
            for s in 0..hay.len().saturating_sub(n.len() - 1) {
                if &hay[s..s + n.len()] == n.as_slice() {
                    v.push(Occurrence {
                        start: s,
                        end: s + n.len(),
                        needle: i,
                    });
                }
            }
        }
        v.sort_by(|a, b| {
            a.start
                .cmp(&b.start)
                .then(b.end.cmp(&a.end))
                .then(a.needle.cmp(&b.needle))
        });
        v
    }

    fn check(needles: &[Vec<u8>], hay: &[u8]) {
        let mut t = Needles::new(needles.iter().map(|n| n.as_slice()).collect());
        assert_eq!(t.all(hay), reference_overlapping(needles, hay));
        // The scalar probe finds the same (where the vector probe ran above).
        t.avx2 = false;
        assert_eq!(t.all(hay), reference_overlapping(needles, hay));
        // Leftmost-longest as aho-corasick reports it.
        let nonempty: Vec<&Vec<u8>> = needles.iter().filter(|n| !n.is_empty()).collect();
        if nonempty.len() == needles.len() && !needles.is_empty() {
            let ac = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(needles)
                .unwrap();
            let want: Vec<(usize, usize, usize)> = ac
                .find_iter(hay)
                .map(|m| (m.start(), m.end(), m.pattern().as_usize()))
                .collect();
            let got: Vec<(usize, usize, usize)> = t
                .leftmost_longest(hay)
                .iter()
                .map(|o| (o.start, o.end, o.needle))
                .collect();
            assert_eq!(got, want);
            let ac = AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .build(needles)
                .unwrap();
            let want: Vec<(usize, usize, usize)> = ac
                .find_overlapping_iter(hay)
                .map(|m| (m.start(), m.end(), m.pattern().as_usize()))
                .collect();
            assert_eq!(overlapping_order(needles, hay), want);
        }
    }

    /// The order `find_overlapping_iter` reports matches in: by end, then longest, then first needle (the leak
    /// check names the first one that is a leak).
    fn overlapping_order(needles: &[Vec<u8>], hay: &[u8]) -> Vec<(usize, usize, usize)> {
        let t = Needles::new(needles.iter().map(|n| n.as_slice()).collect());
        let mut v = t.all(hay);
        v.sort_by_key(|o| (o.end, std::cmp::Reverse(o.end - o.start), o.needle));
        v.into_iter().map(|o| (o.start, o.end, o.needle)).collect()
    }

    #[test]
    fn cases() {
        let n = |v: &[&str]| v.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
        check(
            &n(&["i-0123456789abcdef0", "vpc-12345678", "10.0.0.1"]),
            b"x i-0123456789abcdef0 vpc-12345678 10.0.0.10.0.0.1",
        );
        check(&n(&["abc", "abcdefgh", "bcdefghi", "abcdefgh"]), b"abcdefghij abcdefgh");
        check(&n(&["aaaaaaa", "aaaa"]), b"aaaaaaaaaaaaaa");
        // Detached and attached again, an index finds what it found before (and the short needles too).
        let set = n(&["i-0123456789abcdef0", "vpc-1234", "10.0.0.1"]);
        let hay = b"x vpc-1234 i-0123456789abcdef0 10.0.0.1 vpc-1234";
        let index = Needles::new(set.iter().map(|n| n.as_slice()).collect());
        let before = index.all(hay);
        let copies: Vec<Vec<u8>> = set.clone();
        let again = index.detach().attach(copies.iter().map(|n| n.as_slice()).collect());
        assert_eq!(again.all(hay), before);
        assert_eq!(before, reference_overlapping(&set, hay));
        // Needles of 11 bytes or more are probed every 8 bytes, at every alignment (and past 64-byte rounds).
        let long = n(&[
            "i-0123456789abcdef0",
            "10.100.20.30",
            "arn:aws:iam::123456789012:role/x",
        ]);
        assert_eq!(Needles::new(long.iter().map(|n| n.as_slice()).collect()).stride, 8);
        // One or two needles of 7 to 10 bytes among them are left out of the index, which keeps stride 8; with
        // three, the index takes them and probes every 4 bytes.
        let mut mixed = long.clone();
        mixed.extend(n(&["10.0.0.1", "i-1234abcd"]));
        assert_eq!(Needles::new(mixed.iter().map(|n| n.as_slice()).collect()).stride, 8);
        check(
            &mixed,
            b"at 10.0.0.1 and 10.0.0.10, i-1234abcd i-0123456789abcdef0 10.100.20.30",
        );
        mixed.extend(n(&["10.9.8.7"]));
        assert_eq!(Needles::new(mixed.iter().map(|n| n.as_slice()).collect()).stride, 4);
        check(
            &mixed,
            b"at 10.0.0.1 and 10.9.8.7, i-1234abcd i-0123456789abcdef0 10.100.20.30",
        );
        for pad in 0..9 {
            let mut hay = " ".repeat(pad).into_bytes();
            for _ in 0..3 {
                hay.extend_from_slice(b"x 10.100.20.30 i-0123456789abcdef0 arn:aws:iam::123456789012:role/xy ");
            }
            check(&long, &hay);
        }
        check(&n(&["x"]), b"");
        check(&n(&["1234567"]), b"123456");
        // Ids sharing a long prefix spread over different grams; a set no gram choice can spread falls back to
        // the automaton.
        let ids: Vec<Vec<u8>> = (0..300).map(|i| format!("i-{i:017x}").into_bytes()).collect();
        let hay: Vec<u8> = ids
            .iter()
            .rev()
            .step_by(7)
            .flat_map(|i| [&b" x"[..], i].concat())
            .collect();
        check(&ids, &hay);
        let same: Vec<Vec<u8>> = (0..100)
            .map(|i| format!("{}{}", "a".repeat(12), "a".repeat(i % 5)).into_bytes())
            .collect();
        check(&same, &b"a".repeat(40));
        // Names that share every gram of one residue modulo 8 (`-log` and `cket` at offsets 10 and 2 of residue
        // 2): every 4 bytes, they spread (`-17-` at offset 6), and nothing goes to the automaton (everything did,
        // and a 1 MB request with ~80 such names was masked at half the speed).
        let ids = (1..=40u64).map(|i| format!("i-{:017x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).into_bytes());
        let named: Vec<Vec<u8>> = (100..140)
            .map(|i| format!("bucket-{i}-logs").into_bytes())
            .chain(ids.clone())
            .collect();
        let t = Needles::new(named.iter().map(|n| n.as_slice()).collect());
        assert!(matches!(t.rest, Rest::None));
        assert_eq!((t.stride, t.postings.len()), (4, 80 * 4));
        let planted = |named: &[Vec<u8>]| -> Vec<u8> {
            let words = named.iter().step_by(3);
            words
                .flat_map(|n| [&b"s3://"[..], n, b"/key bucket-99-logs "].concat())
                .collect()
        };
        check(&named, &planted(&named));
        // Names whose last three bytes alone differ share every gram of residue 0 modulo 4 too: beyond
        // `MAX_CHAIN` of them per gram, they, and only they, go to the automaton.
        let named: Vec<Vec<u8>> = (100..220)
            .map(|i| format!("bucket-logs-{i}").into_bytes())
            .chain(ids)
            .collect();
        let t = Needles::new(named.iter().map(|n| n.as_slice()).collect());
        match &t.rest {
            Rest::Automaton(_, out) => assert_eq!(out, &(0..120).collect::<Vec<u32>>()),
            _ => panic!("the names are searched by an automaton"),
        }
        assert_eq!((t.stride, t.postings.len()), (4, 40 * 4));
        check(&named, &planted(&named));
    }

    /// `check` on a text of `filler` with the picked needles planted between.
    fn check_planted(needles: Vec<String>, filler: &str, picks: &[usize]) {
        let needles: Vec<Vec<u8>> = needles.into_iter().map(String::into_bytes).collect();
        let mut hay = filler.as_bytes().to_vec();
        for p in picks {
            hay.extend_from_slice(&needles[p % needles.len()]);
            hay.extend_from_slice(filler.as_bytes());
        }
        check(&needles, &hay);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        #[test]
        fn equals_reference(needles in proptest::collection::vec("[ab0\\-]{1,12}", 1..12),
                            hay in "[ab0 \\-]{0,200}") {
            let needles: Vec<Vec<u8>> = needles.into_iter().map(String::into_bytes).collect();
            check(&needles, hay.as_bytes());
        }

        #[test]
        fn planted_long(needles in proptest::collection::vec("[a-z0-9-]{11,40}", 1..20), filler in "[a-z0-9 -]{0,70}", picks in proptest::collection::vec(0usize..100, 0..10)) {
            check_planted(needles, &filler, &picks);
        }

        /// Many needles with a long common part and a short varying one, anywhere in them: the sets that overload
        /// a gram (at stride 8, at stride 4, or both), beside random ids.
        #[test]
        fn planted_similar(head in "[a-z-]{0,12}", tail in "[a-z-]{0,12}", count in 33usize..140,
                           ids in proptest::collection::vec("[a-f0-9]{11,20}", 0..40),
                           filler in "[a-z0-9 -]{0,30}", picks in proptest::collection::vec(0usize..200, 0..12)) {
            let mut needles: Vec<String> = (0..count).map(|k| format!("{head}{k}{tail}")).collect();
            needles.extend(ids);
            check_planted(needles, &filler, &picks);
        }

        #[test]
        fn planted(needles in proptest::collection::vec("[a-z0-9-]{7,30}", 1..20), filler in "[a-z0-9 -]{0,40}", picks in proptest::collection::vec(0usize..100, 0..10)) {
            check_planted(needles, &filler, &picks);
        }
    }
}
