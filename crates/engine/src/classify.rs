//! Byte classes of 64-byte blocks as bit masks (bit `i` of a mask = byte `i` of the block).
//!
//! The detector's per-token questions ("does this token hold a digit?", "where is its last `:`?", "is there a
//! `-` followed by eight alphanumerics?") become a few bit operations on these masks instead of loops over the
//! token's bytes. One 64-byte block is classified at a time, with AVX-512 or AVX2 when the CPU has it (checked
//! once at run time) and with a scalar loop otherwise; all give identical masks (tested).
//!
//! The classes are defined by the scalar predicates below ([`Block::scalar`]); the vector code computes the same
//! sets with range compares and nibble-table lookups (`vpshufb`).

use crate::skip;

/// Class masks of one 64-byte block.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct Block {
    /// Token bytes: not a separator (ASCII alphanumerics and `- . : / = % @ _ + # ~ * & ? ! $`).
    pub w: u64,
    /// Bytes the detector jumps to ([`skip::interesting`]): digits, capitals, `- . / : = % @ _ +`.
    pub k: u64,
    /// `0-9`.
    pub d: u64,
    /// `A-Za-z`.
    pub al: u64,
    /// `A-Z`.
    pub u: u64,
    /// `-`.
    pub dash: u64,
    /// `.`.
    pub dot: u64,
    /// `:`.
    pub colon: u64,
    /// `=`.
    pub eq: u64,
    /// `_`.
    pub us: u64,
    /// `>`, and a quote followed by `:` (the end of a quoted key): the bytes after a run that make it a key.
    pub gt: u64,
    /// `\\`.
    pub bs: u64,
    /// Starts of three-byte sequences that may begin an anchor of the pattern table (groups 0 to 5 of [`TRI`]).
    pub tri: u64,
    /// `r-` (group 6 of [`TRI`]).
    pub tri6: u64,
}

/// Bytes a block classification reads: the block and two bytes after it (for the three-byte anchors).
pub(crate) const READ: usize = 64 + 2;

// ---------------------------------------------------------------------------------------------------------------
// Three-byte anchors

/// Nibble tables `(lo, hi)` for the three positions of an anchor: position `p` of a sequence is in group `g`
/// when bit `g` of `lo[b & 15] & hi[b >> 4]` is set. A sequence starts an anchor candidate when one group has
/// its bit at all three positions. Groups (case-insensitive unless noted; each position's set is a
/// supersets of what is listed, as nibble tables can only express products of nibble sets):
/// 0. `a` + `w|m|l` + `s|z|i`: `aws…`, `amz-`, `alias/`
/// 1. `s` + `3` + `: / . -`: `s3://`, `s3.`
/// 2. `i` + `p|n` + `-|t`: `ip-`, `internal`
/// 3. `clo`: `cloudfront`
/// 4. `bea`: `beanstalk`
/// 5. case-sensitive `A|F|I` + `Q|g|w|B` + `o|S`: the credential prefixes `IQoJb3`, `AgoJb3`, `FwoGZX`,
///    `FQoGZX`, `AQoDYX`, `ABSK`.
/// 6. case-sensitive `r` + `-` + any byte: `r-` (organization roots).
///
/// Group 1 also takes `a` and `n` in third position (`s3a://`, `s3n://`).
pub(crate) const TRI: [([u8; 16], [u8; 16]); 3] = [
    tri_tables(&[
        (&[1], &[4, 6]),    // a
        (&[3], &[5, 7]),    // s
        (&[9], &[4, 6]),    // i
        (&[3], &[4, 6]),    // c
        (&[2], &[4, 6]),    // b
        (&[1, 6, 9], &[4]), // A F I
        (&[2], &[7]),       // r
    ]),
    tri_tables(&[
        (&[7, 0xC, 0xD], &[4, 5, 6, 7]), // w l m
        (&[3], &[3]),                    // 3
        (&[0, 0xE], &[4, 5, 6, 7]),      // p n
        (&[0xC], &[4, 6]),               // l
        (&[5], &[4, 6]),                 // e
        (&[1, 2, 7], &[4, 5, 6, 7]),     // Q g w B
        (&[0xD], &[2]),                  // -
    ]),
    tri_tables(&[
        (&[3, 9, 0xA], &[4, 5, 6, 7]),          // s z i
        (&[0xA, 0xD, 0xE, 0xF, 1], &[2, 3, 6]), // : - . / a n
        (&[4, 0xD], &[2, 5, 7]),                // t -
        (&[0xF], &[4, 6]),                      // o
        (&[1], &[4, 6]),                        // a
        (&[3, 0xF], &[5, 6]),                   // S o
        (ALL, ALL),                             // any
    ]),
];

const ALL: &[u8] = &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

const fn tri_tables(groups: &[(&[u8], &[u8])]) -> ([u8; 16], [u8; 16]) {
    let mut lo = [0u8; 16];
    let mut hi = [0u8; 16];
    let mut g = 0;
    while g < groups.len() {
        let (los, his) = groups[g];
        let mut i = 0;
        while i < los.len() {
            lo[los[i] as usize] |= 1 << g;
            i += 1;
        }
        i = 0;
        while i < his.len() {
            hi[his[i] as usize] |= 1 << g;
            i += 1;
        }
        g += 1;
    }
    (lo, hi)
}

#[inline]
fn tri_class(p: usize, b: u8) -> u8 {
    TRI[p].0[(b & 15) as usize] & TRI[p].1[(b >> 4) as usize]
}

// ---------------------------------------------------------------------------------------------------------------
// Byte predicates (the definition of every class)

#[inline]
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b':'
                | b'/'
                | b'='
                | b'%'
                | b'@'
                | b'_'
                | b'+'
                | b'#'
                | b'~'
                | b'*'
                | b'&'
                | b'?'
                | b'!'
                | b'$'
        )
}

/// Row-one-hot nibble tables for a byte set: `b` is in the set iff `lo[b & 15] & hi[b >> 4] != 0`. Exact for any
/// set of bytes within `0x20..0x80` (rows 2 to 7, one bit each).
const fn row_tables(set: &[bool; 256]) -> ([u8; 16], [u8; 16]) {
    let mut lo = [0u8; 16];
    let mut hi = [0u8; 16];
    let mut row = 2;
    while row < 8 {
        hi[row] = 1 << (row - 2);
        let mut l = 0;
        while l < 16 {
            if set[row * 16 + l] {
                lo[l] |= 1 << (row - 2);
            }
            l += 1;
        }
        row += 1;
    }
    (lo, hi)
}

const fn token_byte_const(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b':'
                | b'/'
                | b'='
                | b'%'
                | b'@'
                | b'_'
                | b'+'
                | b'#'
                | b'~'
                | b'*'
                | b'&'
                | b'?'
                | b'!'
                | b'$'
        )
}

const fn interesting_const(b: u8) -> bool {
    matches!(b, b'-'..=b':' | b'@'..=b'Z' | b'%' | b'=' | b'_' | b'+')
}

const fn byte_set(token: bool) -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = if token {
            token_byte_const(b as u8)
        } else {
            interesting_const(b as u8)
        };
        b += 1;
    }
    t
}

const W_TABLES: ([u8; 16], [u8; 16]) = row_tables(&byte_set(true));
const K_TABLES: ([u8; 16], [u8; 16]) = row_tables(&byte_set(false));

impl Block {
    /// Classifies `bytes[..64]` (`bytes` holds at least [`READ`] bytes), one byte at a time.
    pub(crate) fn scalar(bytes: &[u8]) -> Block {
        let mut m = Block::default();
        for i in 0..64 {
            let b = bytes[i];
            let bit = 1u64 << i;
            let set = |mask: &mut u64, yes: bool| {
                if yes {
                    *mask |= bit
                }
            };
            set(&mut m.w, is_token_byte(b));
            set(&mut m.k, skip::interesting(b));
            set(&mut m.d, b.is_ascii_digit());
            set(&mut m.al, b.is_ascii_alphabetic());
            set(&mut m.u, b.is_ascii_uppercase());
            set(&mut m.dash, b == b'-');
            set(&mut m.dot, b == b'.');
            set(&mut m.colon, b == b':');
            set(&mut m.eq, b == b'=');
            set(&mut m.us, b == b'_');
            set(
                &mut m.gt,
                b == b'>' || matches!(b, b'"' | b'\'') && bytes[i + 1] == b':',
            );
            set(&mut m.bs, b == b'\\');
            let t = tri_class(0, b) & tri_class(1, bytes[i + 1]) & tri_class(2, bytes[i + 2]);
            set(&mut m.tri, t & 0x3f != 0);
            set(&mut m.tri6, t & 0x40 != 0);
        }
        m
    }
}

/// The vector code a [`Classifier`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    /// The scalar loop of [`Block::scalar`].
    Portable,
    /// AVX2, BMI1/2, LZCNT and POPCNT (every x86-64 CPU since 2013 or so): one block in two 32-byte halves.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// And AVX-512 F/BW/VBMI2 (Ice Lake and later, Zen 4 and later): one block in one register, each class
    /// compared straight into a mask register.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

/// The best [`Level`] of this CPU.
fn best_level() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        use std::is_x86_feature_detected as has;
        if has!("avx2") && has!("bmi1") && has!("bmi2") && has!("lzcnt") && has!("popcnt") {
            if has!("avx512f") && has!("avx512bw") && has!("avx512vbmi2") {
                return Level::Avx512;
            }
            return Level::Avx2;
        }
    }
    Level::Portable
}

/// Classifies 64-byte blocks of a text, with the best vector code the CPU has ([`Level`], checked once at run
/// time).
pub(crate) struct Classifier {
    level: Level,
}

impl Classifier {
    pub(crate) fn new() -> Classifier {
        static LEVEL: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
        Classifier {
            level: *LEVEL.get_or_init(best_level),
        }
    }

    /// One classifier per level this CPU has, the portable one first (to test each against the others).
    #[cfg(test)]
    pub(crate) fn every() -> Vec<Classifier> {
        let best = Classifier::new().level;
        let mut all = vec![Level::Portable];
        #[cfg(target_arch = "x86_64")]
        all.extend([Level::Avx2, Level::Avx512]);
        all.into_iter()
            .filter(|&l| l <= best)
            .map(|level| Classifier { level })
            .collect()
    }

    /// The level in use.
    pub(crate) fn level(&self) -> Level {
        self.level
    }

    /// Whether the CPU has AVX2, BMI1/2, LZCNT and POPCNT.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn fast(&self) -> bool {
        self.level >= Level::Avx2
    }

    /// Classifies `count` consecutive blocks of `text` starting at `start` (bytes outside `text` read as 0),
    /// handing each to `store` with its index.
    #[inline(always)]
    pub(crate) fn fill(&self, text: &[u8], start: isize, count: usize, mut store: impl FnMut(usize, Block)) {
        // Blocks `lo..hi` can be read in place.
        let lo = if start >= 0 {
            0
        } else {
            (start.unsigned_abs()).div_ceil(64)
        }
        .min(count);
        let room = text.len() as isize - READ as isize - start;
        let hi = if room < 0 {
            0
        } else {
            (room as usize / 64 + 1).min(count)
        }
        .max(lo);
        for b in 0..lo {
            store(b, self.block(text, start + 64 * b as isize));
        }
        if hi > lo {
            let first = (start + 64 * lo as isize) as usize;
            let inside = &text[first..first + 64 * (hi - lo - 1) + READ];
            match self.level {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the CPU has AVX-512 F/BW; block `k` reads `inside[64 * k..][..READ]`, in bounds.
                Level::Avx512 => unsafe { avx512::each(inside, hi - lo, |k, m| store(lo + k, m)) },
                #[cfg(target_arch = "x86_64")]
                Level::Avx2 => {
                    for k in 0..hi - lo {
                        // SAFETY: AVX2 is available; block `k` reads `inside[64 * k..][..READ]`, in bounds.
                        store(lo + k, unsafe { avx2::classify(inside.as_ptr().add(64 * k)) });
                    }
                }
                Level::Portable => {
                    for k in 0..hi - lo {
                        store(lo + k, Block::scalar(&inside[64 * k..]));
                    }
                }
            }
        }
        for b in hi..count {
            store(b, self.block(text, start + 64 * b as isize));
        }
    }

    /// The block of `text` starting at `start` (which may be negative: bytes outside `text` read as 0).
    #[inline]
    pub(crate) fn block(&self, text: &[u8], start: isize) -> Block {
        if start >= 0 && (start as usize) + READ <= text.len() {
            let s = start as usize;
            // SAFETY: `text[s..s + READ]` is in bounds, which is all a classification reads.
            return unsafe { self.at(text.as_ptr().add(s)) };
        }
        // Near an edge: the bytes of `text` it reads, in a zero-padded buffer. (Every block of a short JSON
        // string is near an edge: a request of AWS API output has tens of thousands of them.)
        let lo = start.max(0);
        let hi = (start + READ as isize).min(text.len() as isize);
        if lo >= hi {
            // Nothing of the text (the block before it): zero bytes are no class, and no anchor starts at one.
            return Block::default();
        }
        let mut buf = [0u8; 128];
        let at = (lo - start) as usize;
        buf[at..at + (hi - lo) as usize].copy_from_slice(&text[lo as usize..hi as usize]);
        // SAFETY: `buf` holds 128 >= READ bytes.
        unsafe { self.at(buf.as_ptr()) }
    }

    /// Classifies the block at `p`.
    ///
    /// # Safety
    /// `p..p + READ` is readable.
    #[inline]
    unsafe fn at(&self, p: *const u8) -> Block {
        match self.level {
            // SAFETY (both): the CPU has the level's features (checked in `new`); the caller vouches for `p`.
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => unsafe { avx512::classify(p) },
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => unsafe { avx2::classify(p) },
            Level::Portable => Block::scalar(unsafe { std::slice::from_raw_parts(p, READ) }),
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! Every function here is compiled with AVX2 enabled and must only be called when the CPU has it.
    use super::{Block, K_TABLES, TRI, W_TABLES};
    use std::arch::x86_64::*;

    macro_rules! splat {
        ($b:expr) => {
            _mm256_set1_epi8($b as i8)
        };
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn table(t: &[u8; 16]) -> __m256i {
        _mm256_broadcastsi128_si256(_mm_loadu_si128(t.as_ptr() as *const __m128i))
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn bits(v: __m256i) -> u64 {
        _mm256_movemask_epi8(v) as u32 as u64
    }

    /// `(lo nibbles, hi nibbles)` of every byte.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn nibbles(v: __m256i) -> (__m256i, __m256i) {
        let f = splat!(0x0f);
        (_mm256_and_si256(v, f), _mm256_and_si256(_mm256_srli_epi16(v, 4), f))
    }

    /// `lo_table[lo] & hi_table[hi]` for every byte.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn lookup(lo: __m256i, hi: __m256i, t: &([u8; 16], [u8; 16])) -> __m256i {
        _mm256_and_si256(
            _mm256_shuffle_epi8(table(&t.0), lo),
            _mm256_shuffle_epi8(table(&t.1), hi),
        )
    }

    /// Bytes whose class byte is non-zero.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn nonzero(c: __m256i) -> u64 {
        !bits(_mm256_cmpeq_epi8(c, _mm256_setzero_si256())) & 0xffff_ffff
    }

    /// The masks of the 32 bytes at `p` (reads `p..p + 34`).
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn half(p: *const u8) -> Block {
        let v = _mm256_loadu_si256(p as *const __m256i);
        let v1 = _mm256_loadu_si256(p.add(1) as *const __m256i);
        let v2 = _mm256_loadu_si256(p.add(2) as *const __m256i);
        let (lo, hi) = nibbles(v);
        let (lo1, hi1) = nibbles(v1);
        let (lo2, hi2) = nibbles(v2);
        // Signed compares: bytes >= 0x80 are negative and fall outside every ASCII range.
        let d = _mm256_and_si256(
            _mm256_cmpgt_epi8(v, splat!(b'0' - 1)),
            _mm256_cmpgt_epi8(splat!(b'9' + 1), v),
        );
        let vl = _mm256_or_si256(v, splat!(0x20));
        let al = _mm256_and_si256(
            _mm256_cmpgt_epi8(vl, splat!(b'a' - 1)),
            _mm256_cmpgt_epi8(splat!(b'z' + 1), vl),
        );
        let u = _mm256_and_si256(al, _mm256_cmpgt_epi8(splat!(b'a'), v));
        let tri = _mm256_and_si256(
            lookup(lo, hi, &TRI[0]),
            _mm256_and_si256(lookup(lo1, hi1, &TRI[1]), lookup(lo2, hi2, &TRI[2])),
        );
        Block {
            w: nonzero(lookup(lo, hi, &W_TABLES)),
            k: nonzero(lookup(lo, hi, &K_TABLES)),
            d: bits(d),
            al: bits(al),
            u: bits(u),
            dash: bits(_mm256_cmpeq_epi8(v, splat!(b'-'))),
            dot: bits(_mm256_cmpeq_epi8(v, splat!(b'.'))),
            colon: bits(_mm256_cmpeq_epi8(v, splat!(b':'))),
            eq: bits(_mm256_cmpeq_epi8(v, splat!(b'='))),
            us: bits(_mm256_cmpeq_epi8(v, splat!(b'_'))),
            gt: bits(_mm256_or_si256(
                _mm256_cmpeq_epi8(v, splat!(b'>')),
                _mm256_and_si256(
                    _mm256_or_si256(_mm256_cmpeq_epi8(v, splat!(b'"')), _mm256_cmpeq_epi8(v, splat!(b'\''))),
                    _mm256_cmpeq_epi8(v1, splat!(b':')),
                ),
            )),
            bs: bits(_mm256_cmpeq_epi8(v, splat!(b'\\'))),
            tri: nonzero(_mm256_and_si256(tri, splat!(0x3f))),
            tri6: bits(_mm256_slli_epi16(tri, 1)),
        }
    }

    /// Classifies the 64 bytes at `p`.
    ///
    /// # Safety
    /// The CPU supports AVX2, and `p..p + READ` is readable.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) unsafe fn classify(p: *const u8) -> Block {
        let a = half(p);
        let b = half(p.add(32));
        let j = |x: u64, y: u64| x | (y << 32);
        Block {
            w: j(a.w, b.w),
            k: j(a.k, b.k),
            d: j(a.d, b.d),
            al: j(a.al, b.al),
            u: j(a.u, b.u),
            dash: j(a.dash, b.dash),
            dot: j(a.dot, b.dot),
            colon: j(a.colon, b.colon),
            eq: j(a.eq, b.eq),
            us: j(a.us, b.us),
            gt: j(a.gt, b.gt),
            bs: j(a.bs, b.bs),
            tri: j(a.tri, b.tri),
            tri6: j(a.tri6, b.tri6),
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    //! Every function here is compiled with AVX-512 F/BW enabled and must only be called when the CPU has it.
    use super::{Block, K_TABLES, READ, TRI, W_TABLES};
    use std::arch::x86_64::*;

    macro_rules! splat {
        ($b:expr) => {
            _mm512_set1_epi8($b as i8)
        };
    }

    /// The bytes at which `lo_table[lo] & hi_table[hi]` is non-zero.
    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    fn lookup(lo: __m512i, hi: __m512i, t: &([u8; 16], [u8; 16])) -> __m512i {
        // SAFETY: the tables are 16 bytes each.
        let (tl, th) = unsafe {
            (
                _mm512_broadcast_i32x4(_mm_loadu_si128(t.0.as_ptr() as *const __m128i)),
                _mm512_broadcast_i32x4(_mm_loadu_si128(t.1.as_ptr() as *const __m128i)),
            )
        };
        _mm512_and_si512(_mm512_shuffle_epi8(tl, lo), _mm512_shuffle_epi8(th, hi))
    }

    /// `(lo nibbles, hi nibbles)` of every byte.
    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    fn nibbles(v: __m512i) -> (__m512i, __m512i) {
        let f = splat!(0x0f);
        (_mm512_and_si512(v, f), _mm512_and_si512(_mm512_srli_epi16::<4>(v), f))
    }

    /// Bytes within `lo..=hi` (unsigned).
    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    fn range(v: __m512i, lo: u8, hi: u8) -> u64 {
        _mm512_cmplt_epu8_mask(_mm512_sub_epi8(v, splat!(lo)), splat!(hi - lo + 1))
    }

    /// Classifies the 64 bytes at `p`.
    ///
    /// # Safety
    /// The CPU supports AVX-512 F and BW, and `p..p + READ` is readable.
    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    pub(super) unsafe fn classify(p: *const u8) -> Block {
        // SAFETY: the caller vouches for `p..p + 66`.
        let (v, v1, v2) = unsafe {
            (
                _mm512_loadu_si512(p as *const _),
                _mm512_loadu_si512(p.add(1) as *const _),
                _mm512_loadu_si512(p.add(2) as *const _),
            )
        };
        let (lo, hi) = nibbles(v);
        let (lo1, hi1) = nibbles(v1);
        let (lo2, hi2) = nibbles(v2);
        let eq = |c: u8| _mm512_cmpeq_epi8_mask(v, splat!(c));
        let tri = _mm512_and_si512(
            lookup(lo, hi, &TRI[0]),
            _mm512_and_si512(lookup(lo1, hi1, &TRI[1]), lookup(lo2, hi2, &TRI[2])),
        );
        let al = range(_mm512_or_si512(v, splat!(0x20)), b'a', b'z');
        let nonzero = |c: __m512i| _mm512_test_epi8_mask(c, c);
        Block {
            w: nonzero(lookup(lo, hi, &W_TABLES)),
            k: nonzero(lookup(lo, hi, &K_TABLES)),
            d: range(v, b'0', b'9'),
            al,
            u: range(v, b'A', b'Z'),
            dash: eq(b'-'),
            dot: eq(b'.'),
            colon: eq(b':'),
            eq: eq(b'='),
            us: eq(b'_'),
            gt: eq(b'>') | ((eq(b'"') | eq(b'\'')) & _mm512_cmpeq_epi8_mask(v1, splat!(b':'))),
            bs: eq(b'\\'),
            tri: _mm512_test_epi8_mask(tri, splat!(0x3f)),
            tri6: _mm512_test_epi8_mask(tri, splat!(0x40)),
        }
    }

    /// Classifies the `count` consecutive blocks at the start of `inside` (which holds `64 * (count - 1) + READ`
    /// bytes at least), handing each to `store` with its index: the loop compiled with AVX-512, so that
    /// [`classify`] is inlined into it.
    ///
    /// # Safety
    /// The CPU supports AVX-512 F and BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn each(inside: &[u8], count: usize, mut store: impl FnMut(usize, Block)) {
        assert!(count == 0 || inside.len() >= 64 * (count - 1) + READ);
        for k in 0..count {
            // SAFETY: block `k` reads `inside[64 * k..][..READ]`, in bounds (asserted).
            store(k, unsafe { classify(inside.as_ptr().add(64 * k)) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nibble_tables_are_exact() {
        for b in 0..=255u8 {
            let w = W_TABLES.0[(b & 15) as usize] & W_TABLES.1[(b >> 4) as usize] != 0;
            assert_eq!(w, is_token_byte(b), "w {b:#x}");
            let k = K_TABLES.0[(b & 15) as usize] & K_TABLES.1[(b >> 4) as usize] != 0;
            assert_eq!(k, skip::interesting(b), "k {b:#x}");
            assert_eq!(is_token_byte(b), token_byte_const(b));
        }
    }

    #[test]
    fn token_bytes_are_the_detectors_non_separators() {
        for b in 0..=255u8 {
            assert_eq!(
                is_token_byte(b),
                crate::detect::CLASS[b as usize] & crate::detect::SEP == 0,
                "{b:#x}"
            );
        }
    }

    /// Every anchor the detector's `interesting` and pattern table look for is a candidate at its first byte.
    #[test]
    fn anchors_are_candidates() {
        let any_case: &[&[u8]] = &[
            b"aws", b"amz", b"ali", b"s3:", b"s3/", b"s3.", b"s3-", b"ip-", b"int", b"clo", b"bea",
        ];
        let exact: &[&[u8]] = &[b"IQo", b"Ago", b"Fwo", b"FQo", b"AQo", b"ABS", b"s3a", b"s3n"];
        let tri = |c: &[u8]| tri_class(0, c[0]) & tri_class(1, c[1]) & tri_class(2, c[2]);
        for a in any_case {
            for m in 0..8u8 {
                let c: Vec<u8> = a
                    .iter()
                    .enumerate()
                    .map(|(i, &c)| if m >> i & 1 == 1 { c.to_ascii_uppercase() } else { c })
                    .collect();
                assert!(tri(&c) & 0x3f != 0, "{}", String::from_utf8_lossy(&c));
            }
        }
        for a in exact {
            assert!(tri(a) & 0x3f != 0, "{}", String::from_utf8_lossy(a));
        }
        for b in 0..=255u8 {
            assert!(tri(&[b'r', b'-', b]) & 0x40 != 0);
        }
    }

    /// Every level classifies every block of `bytes` (and the blocks around it) as the scalar definition does,
    /// one at a time and in runs.
    fn check(bytes: &[u8]) {
        let want = |start: isize| {
            let mut buf = vec![0u8; READ];
            for (i, slot) in buf.iter_mut().enumerate() {
                let p = start + i as isize;
                if p >= 0 && (p as usize) < bytes.len() {
                    *slot = bytes[p as usize];
                }
            }
            Block::scalar(&buf)
        };
        for c in Classifier::every() {
            let level = c.level();
            for start in -70..bytes.len() as isize + 2 {
                assert_eq!(c.block(bytes, start), want(start), "{level:?}, start {start}");
            }
            for start in [-130, -64, -1, 0, 1, 63] {
                let count = (bytes.len() + 200) / 64;
                let mut seen = 0;
                c.fill(bytes, start, count, |b, got| {
                    assert_eq!(b, seen);
                    seen += 1;
                    let at = start + 64 * b as isize;
                    assert_eq!(got, want(at), "{level:?}, fill from {start}, block {b}");
                });
                assert_eq!(seen, count);
            }
        }
    }

    /// The levels a CPU has are tested here; say which (`--nocapture`), as a machine without AVX-512 tests less.
    #[test]
    fn levels_tested() {
        let levels: Vec<Level> = Classifier::every().iter().map(Classifier::level).collect();
        eprintln!("classifier levels tested on this CPU: {levels:?}");
        assert_eq!(levels[0], Level::Portable);
    }

    #[test]
    fn every_byte_value() {
        let all: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
        check(&all);
    }

    proptest! {
        /// The vector classification equals the scalar definition, anywhere in a text.
        #[test]
        fn simd_equals_scalar(bytes in proptest::collection::vec(any::<u8>(), 0..300),
                              text in "[a-zA-Z0-9 .:/=_%@+#~*&?!$\"'(),;<>\\[\\]{}|\\\\-]{0,200}") {
            check(&bytes);
            check(text.as_bytes());
        }
    }
}
