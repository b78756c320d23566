//! The scan over block masks: the same tokens as [`Detector::find_reference`], in the same order, but most of
//! them are dismissed without looking at their bytes.
//!
//! Three levels:
//! 1. [`crate::classify`] turns each 64-byte block into bit masks of byte classes.
//! 2. [`anchors`] and [`Detector::scan`]'s per-block pass compute, with bit-parallel operations on whole blocks
//!    (four blocks at a time in AVX2 lanes, eight in AVX-512 ones), for every run of token bytes, at its end marker: whether it is a
//!    visited token, and which of [`Detector::token`]'s routes might act on it (a pattern, a key, a shape, a
//!    name). Each answer is a superset: "might".
//! 3. Tokens with a "might" get the matching test on their masks (`acts`: the pattern, key, shape and name checks);
//!    what those cannot clear is visited exactly as before ([`Detector::visit`]).
//!
//! Every test only has to be right when it says "inert"; the differential tests compare `find` with
//! `find_reference` on corpora and random text.

use super::*;
use crate::classify::Block;

/// Blocks of 64 bytes per segment: one before the span, 132 in it, one after it, and two to make groups of
/// eight.
pub(super) const SEGMENT_BLOCKS: usize = 136;

/// The class masks of the blocks of one segment, class by class (so four or eight consecutive blocks load as
/// one vector; `CAP` is a multiple of eight). Block 0 is the block before `base`; blocks `1..=CAP - 4` cover the bytes whose runs this
/// segment decides (the span); the next one is a look-ahead for the runs that cross its end.
pub(super) struct Masks<const CAP: usize> {
    base: usize,
    len: usize,
    w: [u64; CAP],
    k: [u64; CAP],
    d: [u64; CAP],
    al: [u64; CAP],
    u: [u64; CAP],
    dash: [u64; CAP],
    dot: [u64; CAP],
    colon: [u64; CAP],
    eq: [u64; CAP],
    us: [u64; CAP],
    gt: [u64; CAP],
    bs: [u64; CAP],
    tri: [u64; CAP],
    tri6: [u64; CAP],
    /// The anchors of [`anchors`]: pattern, key, shape.
    apat: [u64; CAP],
    akey: [u64; CAP],
    ashape: [u64; CAP],
}

impl<const CAP: usize> Masks<CAP> {
    const SPAN: usize = (CAP - 4) * 64;
    const GROUPS_OF_EIGHT: () = assert!(CAP.is_multiple_of(8) && CAP >= 16);

    fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::GROUPS_OF_EIGHT;
        let z = [0u64; CAP];
        Masks {
            base: 0,
            len: 0,
            w: z,
            k: z,
            d: z,
            al: z,
            u: z,
            dash: z,
            dot: z,
            colon: z,
            eq: z,
            us: z,
            gt: z,
            bs: z,
            tri: z,
            tri6: z,
            apat: z,
            akey: z,
            ashape: z,
        }
    }

    #[inline(always)]
    fn fill(&mut self, cls: &Classifier, text: &[u8], base: usize) {
        self.base = base;
        // Blocks up to the one holding `end` (a run may end right at the end of the text).
        let end = text.len().min(base + Self::SPAN + 63);
        self.len = 2 + (end - base) / 64;
        let len = self.len;
        cls.fill(text, base as isize - 64, len, |b, m: Block| {
            self.w[b] = m.w;
            self.k[b] = m.k;
            self.d[b] = m.d;
            self.al[b] = m.al;
            self.u[b] = m.u;
            self.dash[b] = m.dash;
            self.dot[b] = m.dot;
            self.colon[b] = m.colon;
            self.eq[b] = m.eq;
            self.us[b] = m.us;
            self.gt[b] = m.gt;
            self.bs[b] = m.bs;
            self.tri[b] = m.tri;
            self.tri6[b] = m.tri6;
        });
        // The rest of the last group of eight reads as separators.
        for b in len..len.next_multiple_of(8).min(CAP) {
            for a in [
                &mut self.w,
                &mut self.k,
                &mut self.d,
                &mut self.al,
                &mut self.u,
                &mut self.dash,
                &mut self.dot,
                &mut self.colon,
                &mut self.eq,
                &mut self.us,
                &mut self.gt,
                &mut self.bs,
                &mut self.tri,
                &mut self.tri6,
            ] {
                a[b] = 0;
            }
        }
    }

    /// Text offset of block `b` (negative for the block before the text).
    #[inline(always)]
    fn start(&self, b: usize) -> isize {
        self.base as isize - 64 + 64 * b as isize
    }

    /// Start of the run of token bytes that ends right before bit `r` of block `b`, not before `floor`.
    #[inline(always)]
    fn run_start(&self, text: &[u8], b: usize, r: usize, floor: usize) -> usize {
        let below = !self.w[b] & ((1u64 << r) - 1);
        if below != 0 {
            return ((self.start(b) + 64 - below.leading_zeros() as isize) as usize).max(floor);
        }
        self.run_start_far(text, b, floor)
    }

    /// [`Masks::run_start`] when the run reaches the start of block `b`.
    #[cold]
    fn run_start_far(&self, text: &[u8], b: usize, floor: usize) -> usize {
        for bb in (0..b).rev() {
            let m = !self.w[bb];
            if m != 0 {
                return ((self.start(bb) + 64 - m.leading_zeros() as isize).max(0) as usize).max(floor);
            }
        }
        let mut s = self.start(0).max(0) as usize;
        while s > floor && CLASS[text[s - 1] as usize] & SEP == 0 {
            s -= 1;
        }
        s.max(floor)
    }

    /// [`prev_raw_token`], from the masks when the previous token lies in these blocks.
    #[inline(always)]
    fn prev_token(&self, text: &[u8], s: usize) -> Option<(usize, usize)> {
        let rel = s as isize - self.start(0);
        if rel < 0 || rel as usize >= self.len * 64 {
            return prev_raw_token(text, s);
        }
        let mut b = rel as usize / 64;
        // The last token byte before `s`.
        let mut m = self.w[b] & ((1u64 << (rel as usize % 64)) - 1);
        let e = loop {
            if m != 0 {
                break (self.start(b) + 64 - m.leading_zeros() as isize) as usize;
            }
            if b == 0 {
                return prev_raw_token(text, s);
            }
            b -= 1;
            m = self.w[b];
        };
        // The first byte of its run.
        let mut m = !self.w[b] & ((1u64 << ((e - 1) as isize - self.start(b))) - 1);
        let start = loop {
            if m != 0 {
                break (self.start(b) + 64 - m.leading_zeros() as isize) as usize;
            }
            if b == 0 {
                return prev_raw_token(text, s);
            }
            b -= 1;
            m = !self.w[b];
        };
        // A text escape (`\n`, not `\uXXXX`, which JSON-escaped non-ASCII text is full of) is a separator:
        // `prev_raw_token`'s rules.
        if start > 0 && text[start - 1] == b'\\' && separating_escape(text[start]) {
            return prev_raw_token(text, s);
        }
        Some((start, e))
    }
}

/// Whether the run `[s0, j)` holds an interesting byte (for runs longer than the masks' look-back).
#[cold]
fn visited(text: &[u8], s0: usize, j: usize) -> bool {
    text[s0..j].iter().any(|&b| crate::skip::interesting(b))
}

// ---------------------------------------------------------------------------------------------------------------
// Bit masks over one token: one block (`u64`) or two (`u128`)

/// A bit mask over one block (`u64`) or two adjacent blocks (`u128`).
pub(super) trait Bits:
    Copy
    + std::ops::BitAnd<Output = Self>
    + std::ops::BitOr<Output = Self>
    + std::ops::Not<Output = Self>
    + std::ops::Shl<u32, Output = Self>
    + std::ops::Shr<u32, Output = Self>
{
    /// Bits `0..x`.
    fn below(x: usize) -> Self;
    fn is_zero(self) -> bool;
    fn count(self) -> u32;
    fn trailing(self) -> u32;
    /// Index of the highest set bit (the mask is not zero).
    fn highest(self) -> u32;
}

macro_rules! bits_impl {
    ($t:ty, $w:expr) => {
        impl Bits for $t {
            #[inline(always)]
            fn below(x: usize) -> Self {
                if x >= $w {
                    !0
                } else {
                    ((1 as $t) << x) - 1
                }
            }
            #[inline(always)]
            fn is_zero(self) -> bool {
                self == 0
            }
            #[inline(always)]
            fn count(self) -> u32 {
                self.count_ones()
            }
            #[inline(always)]
            fn trailing(self) -> u32 {
                self.trailing_zeros()
            }
            #[inline(always)]
            fn highest(self) -> u32 {
                $w - 1 - self.leading_zeros()
            }
        }
    };
}
bits_impl!(u64, 64);
bits_impl!(u128, 128);

/// The masks a token is tested on, read when needed: one block ([`One`], `u64`), or two adjacent ones
/// ([`Two`], `u128`).
pub(super) trait Win: Copy {
    type M: Bits;
    fn d(self) -> Self::M;
    fn al(self) -> Self::M;
    fn u(self) -> Self::M;
    fn dash(self) -> Self::M;
    fn dot(self) -> Self::M;
    fn colon(self) -> Self::M;
    fn eq(self) -> Self::M;
    fn us(self) -> Self::M;
    fn tri(self) -> Self::M;
    fn apat(self) -> Self::M;
    fn akey(self) -> Self::M;
    fn ashape(self) -> Self::M;
}

#[derive(Clone, Copy)]
pub(super) struct One<'a, const CAP: usize>(&'a Masks<CAP>, usize);

#[derive(Clone, Copy)]
pub(super) struct Two<'a, const CAP: usize>(&'a Masks<CAP>, usize);

/// A token of at most 64 bytes over two blocks: the 64 bits from its first byte (bit 0), funnelled out of
/// blocks `.1` and `.1 + 1` (`.2`, 1 to 63: its offset in the first), so that it is tested with `u64`
/// operations like a token inside one block. (Such tokens are about a third of those tested on log text.)
#[derive(Clone, Copy)]
pub(super) struct Shifted<'a, const CAP: usize>(&'a Masks<CAP>, usize, u32);

macro_rules! win_fields {
    ($($f:ident),*) => {
        impl<const CAP: usize> Win for One<'_, CAP> {
            type M = u64;
            $(#[inline(always)] fn $f(self) -> u64 { self.0.$f[self.1] })*
        }
        impl<const CAP: usize> Win for Shifted<'_, CAP> {
            type M = u64;
            $(#[inline(always)] fn $f(self) -> u64 {
                (self.0.$f[self.1] >> self.2) | (self.0.$f[self.1 + 1] << (64 - self.2))
            })*
        }
        impl<const CAP: usize> Win for Two<'_, CAP> {
            type M = u128;
            $(#[inline(always)] fn $f(self) -> u128 {
                self.0.$f[self.1] as u128 | (self.0.$f[self.1 + 1] as u128) << 64
            })*
        }
    };
}
win_fields!(d, al, u, dash, dot, colon, eq, us, tri, apat, akey, ashape);

// ---------------------------------------------------------------------------------------------------------------
// Bit-parallel run flags

/// One block's mask (`u64`) or four consecutive blocks' (AVX2 lanes): what [`anchors`] computes on.
pub(super) trait Lanes: Copy + std::ops::BitAnd<Output = Self> + std::ops::BitOr<Output = Self> {
    const N: usize;
    /// `x` with every block's bits shifted up by `k` (1 to 63): bit `i` gets the bit of the byte `k` before.
    /// `prev` is the previous value of the same mask (the block, or the group of blocks, before).
    fn back(self, prev: Self, k: u32) -> Self;
    fn andnot(self, not: Self) -> Self;
    fn zero() -> Self;
    fn load(a: &[u64], at: usize) -> Self;
    /// Writes the lanes to `a[at..at + N]`.
    fn store(self, a: &mut [u64], at: usize);
}

impl Lanes for u64 {
    const N: usize = 1;
    #[inline(always)]
    fn back(self, prev: u64, k: u32) -> u64 {
        (self << k) | (prev >> (64 - k))
    }
    #[inline(always)]
    fn andnot(self, not: u64) -> u64 {
        self & !not
    }
    #[inline(always)]
    fn zero() -> u64 {
        0
    }
    #[inline(always)]
    fn load(a: &[u64], at: usize) -> u64 {
        a[at]
    }
    #[inline(always)]
    fn store(self, a: &mut [u64], at: usize) {
        a[at] = self;
    }
}

#[cfg(target_arch = "x86_64")]
mod lanes {
    //! Four blocks' masks in the 64-bit lanes of an AVX2 vector. The functions are only inlined into code
    //! compiled with AVX2 (`scan_x86`), which runs only when the CPU has it.
    use super::Lanes;
    use std::arch::x86_64::*;

    #[derive(Clone, Copy)]
    pub(in crate::detect) struct Y(__m256i);

    impl std::ops::BitAnd for Y {
        type Output = Y;
        #[inline(always)]
        fn bitand(self, o: Y) -> Y {
            // SAFETY: only reached from AVX2 code (see the module comment).
            Y(unsafe { _mm256_and_si256(self.0, o.0) })
        }
    }

    impl std::ops::BitOr for Y {
        type Output = Y;
        #[inline(always)]
        fn bitor(self, o: Y) -> Y {
            // SAFETY: as above.
            Y(unsafe { _mm256_or_si256(self.0, o.0) })
        }
    }

    impl Lanes for Y {
        const N: usize = 4;
        #[inline(always)]
        fn back(self, prev: Y, k: u32) -> Y {
            // SAFETY: as above.
            unsafe {
                // Lanes [x3 of prev, x0, x1, x2]: each lane's block before.
                let before = _mm256_blend_epi32(
                    _mm256_permute4x64_epi64(self.0, 0b10_01_00_11),
                    _mm256_permute4x64_epi64(prev.0, 0b11_11_11_11),
                    0b0000_0011,
                );
                Y(_mm256_or_si256(
                    _mm256_sll_epi64(self.0, _mm_cvtsi32_si128(k as i32)),
                    _mm256_srl_epi64(before, _mm_cvtsi32_si128(64 - k as i32)),
                ))
            }
        }
        #[inline(always)]
        fn andnot(self, not: Y) -> Y {
            // SAFETY: as above.
            Y(unsafe { _mm256_andnot_si256(not.0, self.0) })
        }
        #[inline(always)]
        fn zero() -> Y {
            // SAFETY: as above.
            Y(unsafe { _mm256_setzero_si256() })
        }
        #[inline(always)]
        fn load(a: &[u64], at: usize) -> Y {
            let four = &a[at..at + 4];
            // SAFETY: as above; `four` holds the 32 bytes read.
            Y(unsafe { _mm256_loadu_si256(four.as_ptr() as *const __m256i) })
        }
        #[inline(always)]
        fn store(self, a: &mut [u64], at: usize) {
            let four = &mut a[at..at + 4];
            // SAFETY: as above; `four` holds the 32 bytes written.
            unsafe { _mm256_storeu_si256(four.as_mut_ptr() as *mut __m256i, self.0) }
        }
    }

    /// Eight blocks' masks in the 64-bit lanes of an AVX-512 vector. The functions are only inlined into code
    /// compiled with AVX-512 F and VBMI2 (`anchors_z`), which runs only when the CPU has them.
    #[derive(Clone, Copy)]
    pub(in crate::detect) struct Z(__m512i);

    impl std::ops::BitAnd for Z {
        type Output = Z;
        #[inline(always)]
        fn bitand(self, o: Z) -> Z {
            // SAFETY: only reached from AVX-512 code (see above).
            Z(unsafe { _mm512_and_si512(self.0, o.0) })
        }
    }

    impl std::ops::BitOr for Z {
        type Output = Z;
        #[inline(always)]
        fn bitor(self, o: Z) -> Z {
            // SAFETY: as above.
            Z(unsafe { _mm512_or_si512(self.0, o.0) })
        }
    }

    impl Lanes for Z {
        const N: usize = 8;
        #[inline(always)]
        fn back(self, prev: Z, k: u32) -> Z {
            // SAFETY: as above.
            unsafe {
                // Lanes [x7 of prev, x0, …, x6]: each lane's block before; then one funnel shift per lane
                // (`vpshldvq`: the upper half of `self:before` shifted left by `k`).
                let before = _mm512_alignr_epi64::<7>(self.0, prev.0);
                Z(_mm512_shldv_epi64(self.0, before, _mm512_set1_epi64(k as i64)))
            }
        }
        #[inline(always)]
        fn andnot(self, not: Z) -> Z {
            // SAFETY: as above.
            Z(unsafe { _mm512_andnot_si512(not.0, self.0) })
        }
        #[inline(always)]
        fn zero() -> Z {
            // SAFETY: as above.
            Z(unsafe { _mm512_setzero_si512() })
        }
        #[inline(always)]
        fn load(a: &[u64], at: usize) -> Z {
            let eight = &a[at..at + 8];
            // SAFETY: as above; `eight` holds the 64 bytes read.
            Z(unsafe { _mm512_loadu_si512(eight.as_ptr() as *const _) })
        }
        #[inline(always)]
        fn store(self, a: &mut [u64], at: usize) {
            let eight = &mut a[at..at + 8];
            // SAFETY: as above; `eight` holds the 64 bytes written.
            unsafe { _mm512_storeu_si512(eight.as_mut_ptr() as *mut _, self.0) }
        }
    }
}

/// The classes [`anchors`] reads, for one block or a group.
#[derive(Clone, Copy)]
struct Cls<L> {
    w: L,
    d: L,
    al: L,
    u: L,
    dash: L,
    dot: L,
    colon: L,
    eq: L,
    us: L,
    bs: L,
    tri: L,
    tri6: L,
}

/// The previous block's (or group's) masks, for [`Lanes::back`].
#[derive(Clone, Copy)]
struct Prev<L> {
    w: L,
    d: L,
    u: L,
    an: L,
    word: L,
    ud: L,
    dash: L,
    dot: L,
    op: L,
    bs: L,
    anu2: L,
    anu4: L,
    d2: L,
    d4: L,
    u2: L,
    u4: L,
    u8: L,
    ld: L,
    ld2: L,
    ld4: L,
    w2: L,
    w4: L,
    w8: L,
    w16: L,
    dd: L,
    dd2: L,
    opy: L,
    op2: L,
    op2y: L,
    lead: L,
}

impl<L: Lanes> Prev<L> {
    fn zero() -> Self {
        let z = L::zero();
        Prev {
            w: z,
            d: z,
            u: z,
            an: z,
            word: z,
            ud: z,
            dash: z,
            dot: z,
            op: z,
            bs: z,
            anu2: z,
            anu4: z,
            d2: z,
            d4: z,
            u2: z,
            u4: z,
            u8: z,
            ld: z,
            ld2: z,
            ld4: z,
            w2: z,
            w4: z,
            w8: z,
            w16: z,
            dd: z,
            dd2: z,
            opy: z,
            op2: z,
            op2y: z,
            lead: z,
        }
    }
}

/// Anchors: positions inside runs, each at the last byte of something one of [`Detector::token`]'s routes
/// needs, as `[pattern, key, shape]`, and `after`: the end markers of runs that are a lone `:` or `=`. Every
/// accepted match of the pattern table holds a pattern anchor; every key `key_then_value` can know is followed
/// by a key anchor or `after` (or the token starts with `--`); every shape `context` accepts holds a shape anchor
/// (the tests check these claims pattern by pattern). Supersets. `p` holds the previous masks and is updated.
#[inline(always)]
fn anchors<L: Lanes>(c: &Cls<L>, p: &mut Prev<L>) -> [L; 4] {
    let an = c.al | c.d;
    let word = an | c.us;
    let op = c.colon | c.eq;
    let ud = c.u | c.d;
    let ld = c.d | c.al.andnot(c.u);
    let starts = c.w.andnot(c.w.back(p.w, 1));

    // Patterns. Letter anchors and credential prefixes (ARNs, hosts, URIs, `x-amz-`, `alias/`, `/aws/`, `AWS_…`).
    let mut pat = c.tri;
    // `r-` after a non-word byte (organization roots).
    pat = pat | c.tri6.andnot(word.back(p.word, 1));
    // A run right after a `\`: its escape rules are `visit`'s.
    pat = pat | (starts & c.bs.back(p.bs, 1));
    // `-` and eight alphanumerics or `_` (resource ids, `bedrock-api-key-…`, `p-…`).
    let anu2 = word & word.back(p.word, 1);
    let anu4 = anu2 & anu2.back(p.anu2, 2);
    let anu8 = anu4 & anu4.back(p.anu4, 4);
    // (A Cognito user pool, `us-east-1_AbC123xyz`, has eleven of them after its region's last `-`.)
    pat = pat | (anu8 & c.dash.back(p.dash, 8));
    // Sixteen capitals or digits (access keys, unique ids).
    let u2 = ud & ud.back(p.ud, 1);
    let u4 = u2 & u2.back(p.u2, 2);
    let u8 = u4 & u4.back(p.u4, 4);
    pat = pat | (u8 & u8.back(p.u8, 8));
    // Three dots between digits, close together (IPv4): `dd` = a digit after `<digit>.`.
    let dd = c.d & c.dot.back(p.dot, 1) & c.d.back(p.d, 2);
    let dd2 = dd & (dd.back(p.dd, 2) | dd.back(p.dd, 3) | dd.back(p.dd, 4));
    pat = pat | (dd & (dd2.back(p.dd2, 2) | dd2.back(p.dd2, 3) | dd2.back(p.dd2, 4)));
    // `::`, and three `:`/`=` each within five bytes (IPv6; MAC addresses too).
    pat = pat | (op & op.back(p.op, 1));
    let opy = op.back(p.op, 1) | op.back(p.op, 2); // one or two bytes before
    let near_op = opy | opy.back(p.opy, 2) | op.back(p.op, 5); // one to five
    let op2 = op & near_op;
    let op2y = op2.back(p.op2, 1) | op2.back(p.op2, 2);
    let op3 = op & (op2y | op2y.back(p.op2y, 2) | op2.back(p.op2, 5));
    pat = pat | op3;

    // Keys: a `:` or `=` inside a run, not after a digit (a key before it); `--` (flags). One that starts the run
    // has the previous token's key only when no value follows it in the run (`=` alone, `==`; not `:25` after
    // `"latency_ms"`, whose key is empty): its anchor is the next byte when that is no letter or digit, or, when
    // it is alone, the run's end marker (`after`, which the caller adds to the `>` and quotes after runs).
    let lead = op & starts;
    let lead1 = lead.back(p.lead, 1);
    let key = op.andnot(c.d.back(p.d, 1)).andnot(starts) | (c.dash & c.dash.back(p.dash, 1)) | (lead1 & c.w).andnot(an);
    let after = lead1.andnot(c.w);

    // Shapes. `dddd-dddd-dddd` (account ids; twelve digits are ten lower-case letters or digits, below); the
    // dashes of a UUID (KMS keys).
    let d2 = c.d & c.d.back(p.d, 1);
    let d4 = d2 & d2.back(p.d2, 2);
    let mut shape = d4 & c.dash.back(p.dash, 4) & d4.back(p.d4, 5) & c.dash.back(p.dash, 9);
    shape = shape | (c.dash & c.dash.back(p.dash, 5) & c.dash.back(p.dash, 10) & c.dash.back(p.dash, 15));
    // A capital starting a value, then seven more capitals or digits (hosted zones, CloudFront ids).
    shape = shape | (u8 & c.u.back(p.u, 7)).andnot(an.back(p.an, 8));
    // Ten lower-case letters or digits in a row (API Gateway ids, account ids).
    let ld2 = ld & ld.back(p.ld, 1);
    let ld4 = ld2 & ld2.back(p.ld2, 2);
    let ld8 = ld4 & ld4.back(p.ld4, 4);
    shape = shape | (ld8 & ld2.back(p.ld2, 8));
    // MAC addresses.
    shape = shape | op3;
    // Thirty-two token bytes (secret keys, canonical user ids, session tokens).
    let w2 = c.w & c.w.back(p.w, 1);
    let w4 = w2 & w2.back(p.w2, 2);
    let w8 = w4 & w4.back(p.w4, 4);
    let w16 = w8 & w8.back(p.w8, 8);
    shape = shape | (w16 & w16.back(p.w16, 16));

    *p = Prev {
        w: c.w,
        d: c.d,
        u: c.u,
        an,
        word,
        ud,
        dash: c.dash,
        dot: c.dot,
        op,
        bs: c.bs,
        anu2,
        anu4,
        d2,
        d4,
        u2,
        u4,
        u8,
        ld,
        ld2,
        ld4,
        w2,
        w4,
        w8,
        w16,
        dd,
        dd2,
        opy,
        op2,
        op2y,
        lead,
    };
    [pat, key, shape, after]
}

/// "The run ending before each end marker holds an `x` byte", for the runs of token bytes `w` of one block:
/// the carry of `(w & !x) + starts` ripples from a run's start through its bytes up to its first `x` byte; it
/// reaches the end marker only when there is none. `carry` links the blocks (a run that reaches the end of a
/// block without an `x` carries into the next). With a carry of 0 into the first block, runs that started
/// before it count as holding every class (the safe answer).
#[inline(always)]
fn has(w: u64, starts: u64, ends: u64, x: u64, carry: &mut u64) -> u64 {
    let (z, o1) = (w & !x).overflowing_add(starts);
    let (z, o2) = z.overflowing_add(*carry);
    *carry = (o1 | o2) as u64;
    ends & !z
}

/// [`Masks::anchor_with`] in AVX-512 lanes, eight blocks at a time.
///
/// # Safety
/// The CPU has AVX-512 F, BW and VBMI2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vbmi2")]
unsafe fn anchors_z<const CAP: usize>(m: &mut Masks<CAP>, last: usize) {
    m.anchor_with::<lanes::Z>(last)
}

/// Addition carries of the per-run classes, block to block.
#[derive(Default)]
struct Carries {
    w: u64,
    k: u64,
    nontrim: u64,
    hot: u64,
    dud: u64,
    al: u64,
}

impl<const CAP: usize> Masks<CAP> {
    /// The last block whose runs this segment decides.
    #[inline(always)]
    fn last(&self) -> usize {
        (self.len - 1).min(CAP - 4)
    }

    /// Computes the anchors of blocks `0..=last` (and the rest of the last group), and adds the run ends of
    /// `after` to `gt`: in AVX-512 lanes when the CPU has them, else in `L`'s.
    #[inline(always)]
    fn anchor<L: Lanes>(&mut self, cls: &Classifier, last: usize) {
        #[cfg(target_arch = "x86_64")]
        if cls.level() == crate::classify::Level::Avx512 {
            // SAFETY: the CPU has AVX-512 F, BW and VBMI2 (the level's features, checked by `Classifier::new`).
            return unsafe { anchors_z(self, last) };
        }
        let _ = cls;
        self.anchor_with::<L>(last)
    }

    #[inline(always)]
    fn anchor_with<L: Lanes>(&mut self, last: usize) {
        let mut prev = Prev::<L>::zero();
        let mut g = 0;
        while g <= last {
            let [pat, key, shape, after] = anchors(&self.cls::<L>(g), &mut prev);
            pat.store(&mut self.apat, g);
            key.store(&mut self.akey, g);
            shape.store(&mut self.ashape, g);
            (after | L::load(&self.gt, g)).store(&mut self.gt, g);
            g += L::N;
        }
    }

    /// The runs of block `b` to look at, at their end markers: visited, not only `.` and `:` (trimmed to
    /// nothing), and holding an anchor or being a name candidate; and which of them are name candidates only
    /// (no anchor, no `>` after them).
    #[inline(always)]
    fn todo(&self, b: usize, c: &mut Carries) -> (u64, u64) {
        let w = self.w[b];
        let wp = (w << 1) | c.w;
        c.w = w >> 63;
        let starts = w & !wp;
        let ends = !w & wp;
        let visited = has(w, starts, ends, self.k[b], &mut c.k);
        let nontrim = has(w, starts, ends, w & !(self.dot[b] | self.colon[b]), &mut c.nontrim);
        let anchored = has(
            w,
            starts,
            ends,
            self.apat[b] | self.akey[b] | self.ashape[b],
            &mut c.hot,
        );
        // Name candidates: a letter, and a digit, `-` or `_` (what `looks_like_id` needs).
        let dud = has(w, starts, ends, self.dash[b] | self.us[b] | self.d[b], &mut c.dud);
        let al = has(w, starts, ends, self.al[b], &mut c.al);
        let routed = anchored | (ends & self.gt[b]);
        let todo = visited & nontrim & (routed | (dud & al));
        (todo, todo & !routed)
    }

    /// Whether the token from `s0` to bit `r` of block `b` starts in the block and holds no pattern or shape
    /// anchor.
    #[inline(always)]
    fn key_only(&self, b: usize, r: usize, s0: usize) -> bool {
        let from = s0 as isize - self.start(b);
        from >= 0 && (self.apat[b] | self.ashape[b]) & u64::below(r) & !u64::below(from as usize) == 0
    }

    #[inline(always)]
    fn cls<L: Lanes>(&self, g: usize) -> Cls<L> {
        Cls {
            w: L::load(&self.w, g),
            d: L::load(&self.d, g),
            al: L::load(&self.al, g),
            u: L::load(&self.u, g),
            dash: L::load(&self.dash, g),
            dot: L::load(&self.dot, g),
            colon: L::load(&self.colon, g),
            eq: L::load(&self.eq, g),
            us: L::load(&self.us, g),
            bs: L::load(&self.bs, g),
            tri: L::load(&self.tri, g),
            tri6: L::load(&self.tri6, g),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The scan

impl Detector {
    /// Visits the tokens that hold an interesting byte, in order (the same tokens, in the same order, as
    /// [`Detector::find_reference`]), by their end markers. Tokens no route may act on are skipped; the others
    /// get the checks of the routes that may act, and are visited when a check cannot clear them.
    pub(super) fn scan<const CAP: usize>(&self, cls: &Classifier, text: &[u8], out: &mut Vec<Finding>) {
        #[cfg(target_arch = "x86_64")]
        if cls.fast() {
            // SAFETY: the CPU has every feature `scan_x86` is compiled for (checked by `Classifier::new`).
            return unsafe { self.scan_x86::<CAP>(cls, text, out) };
        }
        self.scan_body::<CAP, u64>(cls, text, out)
    }

    /// [`Detector::scan`] compiled for AVX2, BMI1/2, LZCNT and POPCNT, with the run flags four blocks at a
    /// time.
    ///
    /// # Safety
    /// The CPU has those features.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,bmi1,bmi2,lzcnt,popcnt")]
    unsafe fn scan_x86<const CAP: usize>(&self, cls: &Classifier, text: &[u8], out: &mut Vec<Finding>) {
        self.scan_body::<CAP, lanes::Y>(cls, text, out)
    }

    #[inline(always)]
    fn scan_body<const CAP: usize, L: Lanes>(&self, cls: &Classifier, text: &[u8], out: &mut Vec<Finding>) {
        let mut st = ScanState::default();
        let n = text.len();
        let mut m = Masks::<CAP>::new();
        // `i`: where the reference loop would search for the next interesting byte (tokens ending at or before
        // it are done); `from`: where the next segment starts.
        let mut i = 0;
        let mut from = 0;
        while from <= n {
            let base = from / Masks::<CAP>::SPAN * Masks::<CAP>::SPAN;
            m.fill(cls, text, base);
            let last = m.last();
            m.anchor::<L>(cls, last);
            let mut car = Carries::default();
            for b in 0..=last {
                let (mut todo, names) = m.todo(b, &mut car);
                // Block 0 only primes the carries.
                if b == 0 {
                    continue;
                }
                let o = base + 64 * (b - 1);
                if i >= o {
                    todo &= if i - o >= 63 { 0 } else { !0u64 << (i - o + 1) };
                }
                while todo != 0 {
                    let r = todo.trailing_zeros() as usize;
                    todo &= todo - 1;
                    let j = o + r;
                    if j > n || j <= i {
                        continue;
                    }
                    let s0 = m.run_start(text, b, r, i);
                    if names >> r & 1 != 0 && !self.name_may_follow(text, &m, s0, &st) {
                        continue;
                    }
                    if names >> r & 1 == 0 && m.key_only(b, r, s0) && !self.key_only_may(text, &m, b, r, s0, j, &st) {
                        continue;
                    }
                    if (s0 as isize) < m.start(0) && !visited(text, s0, j) {
                        continue;
                    }
                    if let Some(pk) = self.acts(text, &m, s0, j, &st) {
                        i = j;
                        if let Some(next) = self.visit(text, s0, j, pk, &mut st, out) {
                            i = next;
                            if i >= o + 64 {
                                break;
                            }
                            todo &= if i - o >= 63 { 0 } else { !0u64 << (i - o + 1) };
                        }
                    }
                }
            }
            from = i.max(base + Masks::<CAP>::SPAN);
            if base + Masks::<CAP>::SPAN > n {
                break;
            }
        }
    }

    /// Whether the token `[s0, j)` must be visited (`Some`, with what is known of its patterns): a check per
    /// route its anchors open (every flagged token is also checked as a name).
    #[inline(always)]
    fn acts<const CAP: usize>(
        &self,
        text: &[u8],
        m: &Masks<CAP>,
        s0: usize,
        j: usize,
        st: &ScanState,
    ) -> Option<Known> {
        if (s0 as isize) < m.start(0) {
            return Some(Known::Unknown);
        }
        let k = ((s0 as isize - m.start(0)) / 64) as usize;
        let kl = ((j - 1) as isize - m.start(0)) as usize / 64;
        let org = m.start(k).max(0) as usize;
        if kl == k {
            self.acts_on(text, One(m, k), m, org, s0, j, st)
        } else if kl == k + 1 && j - s0 <= 64 {
            // (`s0` lies after the start of block `k`, or the token would fit in it.)
            self.acts_on(text, Shifted(m, k, (s0 - org) as u32), m, s0, s0, j, st)
        } else if kl == k + 1 {
            self.acts_on(text, Two(m, k), m, org, s0, j, st)
        } else {
            Some(long_token_patterns(m, k, kl, s0 - org, (j - 1) as isize - m.start(kl)))
        }
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn acts_on<W: Win, const CAP: usize>(
        &self,
        text: &[u8],
        win: W,
        m: &Masks<CAP>,
        org: usize,
        s0: usize,
        j: usize,
        st: &ScanState,
    ) -> Option<Known> {
        if s0 > 0 && text[s0 - 1] == b'\\' {
            // A `\uXXXX` escape and nothing after it (non-ASCII text in escaped JSON) is nothing to `visit`,
            // unless a list goes on or a prose keyword comes before (the name route takes any short name-like
            // token: `s3://a, \u0022`; found by the `detect` fuzzer).
            if j - s0 == 5
                && unicode_escape(&text[s0..j])
                && !quoted_key_end(text, j)
                && !self.name_may_act(text, m, s0, st, true)
            {
                return None;
            }
            return Some(Known::Unknown); // a possible escape before the token: `visit` knows the rules
        }
        let s = s0;
        let e = trimmed_end(text, s, j);
        if e == s {
            return None;
        }
        let n = e - s;
        let from_s = !W::M::below(s - org);
        let tm = W::M::below(j - org) & from_s;
        let nonletter = tm & !win.al();
        // A quoted key (`"FunctionName": "my-function"`), which `visit` reads even when it is letters only.
        let quoted = quoted_key_end(text, e);
        // `visit`: letters only and shorter than 16.
        if nonletter.is_zero() && n < 16 && !quoted {
            return None;
        }
        // The routes the run's anchors open (see [`anchors`]).
        let pat = !(win.apat() & tm).is_zero();
        let key =
            !(win.akey() & tm).is_zero() || text.get(j) == Some(&b'>') || quoted || matches!(text[s], b':' | b'=');
        let shape = !(win.ashape() & tm).is_zero();
        let te = W::M::below(e - org) & from_s;
        let ops = (win.colon() | win.eq()) & te;
        if !(pat || key || shape) {
            // Only the name route (the run is a name candidate): `looks_like_id` needs what the run has.
            let (_, vm) = value_part::<W>(text, org, s, e, te, ops);
            return self.name_may_act(text, m, s, st, named(win, vm)).then_some(Known::No);
        }

        // The patterns: a superset test on the masks, then exactly.
        let mut pk = Known::No;
        if pat && n >= 6 {
            let td = tm & win.d();
            if interesting_maybe(&text[s..e], win, tm, td, tm & win.dash(), tm & win.colon()) {
                let tok = &text[s..e];
                if self.ipv4_only(tok) {
                    // Only the IPv4 pattern can match here, and a match makes `interesting` true: run it.
                    if self.ipv4_finds(text, s, e) {
                        return Some(Known::Yes);
                    }
                } else if interesting_exact(tok, win, te, org, s) {
                    pk = Known::Yes;
                }
            }
        }
        if pk == Known::Yes {
            return Some(pk);
        }
        // `key_then_value` (only for tokens with punctuation): the key it would look up must not be known.
        if key && (quoted || !(nonletter & !win.d()).is_zero()) && self.key_may_act(text, m, org, s, e, ops) {
            return Some(pk);
        }
        // `context`: the value's shape, and the words before it.
        let (vs, vm) = value_part::<W>(text, org, s, e, te, ops);
        if shape
            && (!(tm & win.d()).is_zero() || e - vs == 40 || e - vs >= 100)
            && shape_maybe(&text[vs..e], vm, win)
            && self.shape_may_act(text, vs, e, st)
        {
            return Some(pk);
        }
        // An ARN's account field after a placeholder or template region, read by `token` (twelve digits hold a
        // shape anchor; the field is a digit after a colon).
        if shape && !(((win.colon() & tm) << 1) & win.d()).is_zero() && arn_account_field(text, s, e).is_some() {
            return Some(pk);
        }
        // `looks_like_id(v)`.
        let vd = vm & win.d();
        let vdash = vm & win.dash();
        if (vd | vdash | (vm & win.us())).is_zero() || (vm & win.al()).is_zero() {
            return None;
        }
        if (vm & !(vd | vdash | win.dot())).is_zero() {
            return None;
        }
        self.name_may_act(text, m, s, st, named(win, vm)).then_some(pk)
    }

    /// `context`'s shape step, exactly but for lists: the value `[vs, e)` has an ambiguous shape and its
    /// keyword is near, or a list is open (its next item may be one). Most values of a shape have no keyword
    /// (the request ids of a log are UUIDs): they skip `visit`, whose other steps the caller has ruled out.
    #[inline]
    fn shape_may_act(&self, text: &[u8], vs: usize, e: usize, st: &ScanState) -> bool {
        let Some(shape) = shape_of(&text[vs..e]) else {
            return false;
        };
        st.list.is_some()
            || self.context_holds(text, vs, shape)
            || (shape == Shape::Account && account_word_after(text, e))
    }

    /// Whether the token `[s0, j)`, ending at bit `r` of block `b` and starting in it, that only key anchors (and
    /// a `>`, a quote before a `:` or a lone operator's end after it) brought here may be visited: its key may be
    /// known ([`key_end_known`]), or it is a name candidate that [`Detector::name_may_follow`] lets through. Most
    /// keys of log lines and code are not AWS ones (`map:`, `"statusCode":`, `u16>`, `timeout = 30`).
    ///
    /// A superset of `key_may_act`: its key ends before the token's first `:` or `=` (which holds a key anchor
    /// unless it follows a digit, and no key ends with one, or starts the token with a value after it, and the
    /// key is then empty), is the previous token (a lone operator), or ends before the `>` or quote. Out of line:
    /// the scan's loop over a block's tokens stays small.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn key_only_may<const CAP: usize>(
        &self,
        text: &[u8],
        m: &Masks<CAP>,
        b: usize,
        r: usize,
        s0: usize,
        j: usize,
        st: &ScanState,
    ) -> bool {
        if m.gt[b] >> r & 1 != 0 {
            // A lone operator's key is the token before it, as `key_may_act` takes it (it has none of its own,
            // also before a quote and a `:`); another token's ends before the `>` or the quote.
            let lone = j - s0 == 1 && matches!(text[s0], b':' | b'=');
            let known = if lone {
                m.prev_token(text, s0)
                    .map(|k| trim_assign(text, k))
                    .is_some_and(|(_, e)| key_end_known(text, e))
            } else {
                key_end_known(text, j)
            };
            if known {
                return true;
            }
        }
        let org = m.start(b);
        let token = u64::below(r) & !u64::below((s0 as isize - org) as usize);
        let mut anchors = m.akey[b] & token;
        while anchors != 0 {
            let p = (org + anchors.trailing_zeros() as isize) as usize;
            anchors &= anchors - 1;
            if !matches!(text[p], b':' | b'=') || key_end_known(text, p) {
                return true; // `--`, or a key that may be known
            }
        }
        m.al[b] & token != 0 && (m.d[b] | m.dash[b] | m.us[b]) & token != 0 && self.name_may_follow(text, m, s0, st)
    }

    /// Whether [`Detector::acts`] may visit the token at `s0` that only the name route would check: its last
    /// step (a list goes on, or a prose keyword comes before), before the rest of its work; `named` is taken as
    /// true, a superset. Its first steps send a token after a `\\`, or one that starts before the masks, the
    /// whole way; neither is a name candidate only (both count as anchored: see [`anchors`] and [`has`]).
    #[inline(always)]
    fn name_may_follow<const CAP: usize>(&self, text: &[u8], m: &Masks<CAP>, s0: usize, st: &ScanState) -> bool {
        debug_assert!(s0 as isize >= m.start(0) && (s0 == 0 || text[s0 - 1] != b'\\'));
        self.name_may_act(text, m, s0, st, true)
    }

    /// Whether the token at `s` may continue a list after a name, or be a name after a prose keyword (the last
    /// steps of `context`, for a value that looks like an id; `named`: its value may be a name in prose).
    #[inline(always)]
    fn name_may_act<const CAP: usize>(
        &self,
        text: &[u8],
        m: &Masks<CAP>,
        s: usize,
        st: &ScanState,
        named: bool,
    ) -> bool {
        if let Some((_, _, end)) = st.list {
            if end <= s && list_gap(&text[end..s]) {
                return true;
            }
        }
        if !named {
            return false;
        }
        match m.prev_token(text, s) {
            None => false,
            Some(p1) => {
                let (a, b) = trim_assign(text, p1);
                prose_word_maybe(&text[a..b])
            }
        }
    }

    /// Whether `key_then_value` may know the key of the token `[s, e)` (`ops`: its `:` and `=`), or
    /// `query_params` one of its parameters' keys.
    #[inline(always)]
    fn key_may_act<M: Bits, const CAP: usize>(
        &self,
        text: &[u8],
        m: &Masks<CAP>,
        org: usize,
        s: usize,
        e: usize,
        ops: M,
    ) -> bool {
        let op = if !ops.is_zero() {
            Some(org + ops.trailing() as usize)
        } else {
            // The raw token extends over `:`, `=` and `>` after `e`.
            let mut r = e;
            let mut f = None;
            while r < text.len() && matches!(text[r], b':' | b'=' | b'>') {
                if text[r] != b'>' {
                    f = Some(r);
                    break;
                }
                r += 1;
            }
            f
        };
        let key = match op {
            None if e - s >= 2 && text[s] == b'-' && text[s + 1] == b'-' => Some((s, e)),
            None if quoted_key_end(text, e) => Some((s, e)),
            None => None,
            Some(q) => {
                let mut raw_end = e;
                while raw_end < text.len() && matches!(text[raw_end], b':' | b'=' | b'>') {
                    raw_end += 1;
                }
                let value_in_token = q + 1 < raw_end && !matches!(text[q + 1], b':' | b'=' | b'>');
                if value_in_token || q > s {
                    Some((s, q))
                } else {
                    m.prev_token(text, s).map(|k| trim_assign(text, k))
                }
            }
        };
        key.is_some_and(|(a, b)| key_lookup(&text[a..b]).is_some())
            || (memchr::memchr(b'&', &text[s..e]).is_some() && query_params(text, s, e).next().is_some())
    }
}

/// For a token over blocks `k..=kl` (bits `from..` of the first, `..=to` of the last), longer than the masks a
/// token is tested on (base64 blobs, long URLs and paths): it is visited, but the pattern anchors over its blocks
/// still tell whether a pattern may match — every match holds one — so `interesting` need not read it.
#[cold]
#[inline(never)]
fn long_token_patterns<const CAP: usize>(m: &Masks<CAP>, k: usize, kl: usize, from: usize, to: isize) -> Known {
    let span = |b: usize| {
        let lo = if b == k { !0u64 << from } else { !0 };
        let hi = if b == kl { u64::below(to as usize + 1) } else { !0 };
        lo & hi
    };
    match (k..=kl).any(|b| m.apat[b] & span(b) != 0) {
        true => Known::Unknown,
        false => Known::No,
    }
}

/// `context`'s value part of the token `[s, e)` (`te`: its bytes, `ops`: its `:` and `=`): after the last `:` or
/// `=`, or after `/hostedzone/`; its start and its bytes.
#[inline(always)]
fn value_part<W: Win>(text: &[u8], org: usize, s: usize, e: usize, te: W::M, ops: W::M) -> (usize, W::M) {
    let mut vs = s;
    if !ops.is_zero() {
        let q = org + ops.highest() as usize;
        if q + 1 < e && !(e - s == 17 && is_mac(&text[s..e])) {
            vs = q + 1;
        }
    }
    if text[s] == b'/' && text[s..e].starts_with(b"/hostedzone/") {
        vs = s + 12;
    }
    (vs, te & !W::M::below(vs - org))
}

/// Whether a value (`vm`: its bytes) may be a name in prose: `context` looks for one only when the value holds
/// `-` or `_`, or only lower-case letters and digits ("IPv4Address", "HTTP/1.1", "10:30:45.123Z" are not).
#[inline(always)]
fn named<W: Win>(win: W, vm: W::M) -> bool {
    !(vm & (win.dash() | win.us())).is_zero() || (vm & !(win.d() | (win.al() & !win.u()))).is_zero()
}

/// The gap `context` accepts between the values of a list: "a, b and c", and the items of a JSON or Python list
/// (`"a", "b"`, also one per line; the caller makes sure the next one is no key of an object).
///
/// Every test stops at the first byte that fails it, and the comma count comes last: once a list has begun,
/// the scan asks about every later token with the gap from the list's end, which grows with each token until
/// something ends the list (JSON log lines with an `"accountId": "…"` every few kilobytes made a count over the
/// whole gap quadratic: 57 % of the instructions).
pub(super) fn list_gap(gap: &[u8]) -> bool {
    let quote = |c: Option<&u8>| matches!(c, Some(b'"' | b'\''));
    gap.iter().all(|c| matches!(c, b',' | b' ' | b'\t'))
        || gap.eq_ignore_ascii_case(b" and ")
        || gap.eq_ignore_ascii_case(b", and ")
        || gap.eq_ignore_ascii_case(b" or ")
        || (quote(gap.first())
            && quote(gap.last())
            && gap
                .iter()
                .all(|c| matches!(c, b',' | b' ' | b'\t' | b'\r' | b'\n' | b'"' | b'\''))
            && gap.iter().filter(|&&c| c == b',').count() == 1)
}

/// `interesting(tok)` (`tok` = `text[s..]`, its bits `te` in `win`), computed from the masks: the same conditions,
/// each on bits instead of a loop over bytes. Tested against `interesting`.
#[inline]
pub(super) fn interesting_exact<W: Win>(tok: &[u8], win: W, te: W::M, org: usize, s: usize) -> bool {
    let n = tok.len();
    if n < 6 {
        return false;
    }
    let at = |m: W::M| m.trailing() as usize + org - s; // offset in `tok` of the lowest bit
    let d = win.d() & te;
    // Credential prefixes, and the letter anchors (`aws`, `amz-`, `s3:`, `ip-`, `alias/`, `cloudfront`,
    // `internal`, `beanstalk`), at their candidate positions.
    let mut placeholder_like = false;
    let mut cands = win.tri() & te;
    while !cands.is_zero() {
        let i = at(cands);
        cands = cands & !(W::M::below(i + s - org + 1));
        if n >= 24 && CREDENTIAL_PREFIXES.iter().any(|p| tok[i..].starts_with(p)) {
            return true;
        }
        if i + 3 < n && letter_anchor(tok, i, &mut placeholder_like) {
            return true;
        }
    }
    // Sixteen capitals or digits in a row.
    if n >= 16 {
        let ud = (win.u() | win.d()) & te;
        let x = ud & (ud >> 1);
        let x = x & (x >> 2);
        let x = x & (x >> 4);
        if !(x & (x >> 8)).is_zero() {
            return true;
        }
    }
    let dash = win.dash() & te;
    if !dash.is_zero() {
        // A `-`, then eight or more alphanumerics holding a digit, or no letter but `a` to `f` (either case).
        let an = (win.al() | win.d()) & te;
        let x = an & (an >> 1);
        let x = x & (x >> 2);
        let x = x & (x >> 4);
        let mut starts = dash & (x >> 1);
        while !starts.is_zero() {
            let q = starts.trailing();
            starts = starts & !(W::M::below(q as usize + 1));
            // The alphanumeric run after the dash, up to its first other byte.
            let after = an & !W::M::below(q as usize + 1);
            let gap = !an & !W::M::below(q as usize + 1);
            let run = if gap.is_zero() {
                after
            } else {
                after & W::M::below(gap.trailing() as usize)
            };
            let (a, b) = (run.trailing() as usize + org - s, run.highest() as usize + 1 + org - s);
            if (!(run & d).is_zero() || tok[a..b].iter().all(|c| matches!(c.to_ascii_lowercase(), b'a'..=b'f')))
                && !uuid_last_dash(tok, a - 1)
            {
                return true;
            }
        }
        // `-<digit>_` (Cognito user pools).
        if !(win.us() & te & (d << 1) & (dash << 2)).is_zero() {
            return true;
        }
    }
    let dc = d.count();
    let colon = win.colon() & te;
    (dc >= 4 && (win.dot() & te).count() >= 3)
        || (dc > 0 && (!(colon & (colon >> 1)).is_zero() || colon.count() >= 7))
        || (placeholder_like && dc >= 3)
        || prefix_routed(tok)
}

/// A superset of `interesting(t)` (`t` = the token) from the masks of `[s0, j)` (`tm`, a superset of `t`):
/// every way it can answer true.
#[inline(always)]
fn interesting_maybe<W: Win>(t: &[u8], win: W, tm: W::M, td: W::M, dash: W::M, colon: W::M) -> bool {
    let n = t.len();
    // The letter anchors (`aws`, `s3:`, `ip-`, `internal`, …) and the credential prefixes.
    if !(win.tri() & tm).is_zero() {
        return true;
    }
    if prefix_routed(t) {
        return true;
    }
    if !td.is_zero() {
        // Four dotted numbers; `::` or seven `:`.
        if td.count() >= 4 && (win.dot() & tm).count() >= 3 {
            return true;
        }
        if colon.count() >= 7 || !(colon & (colon >> 1)).is_zero() {
            return true;
        }
        // `-<digit>_` (Cognito user pools).
        if !(win.us() & tm & (td << 1) & (dash << 2)).is_zero() {
            return true;
        }
    }
    // A `-` followed by eight alphanumerics (holding a digit, or hex letters only).
    if !dash.is_zero() && n >= 9 {
        let an = (win.al() | win.d()) & tm;
        let x = an & (an >> 1);
        let x = x & (x >> 2);
        let x = x & (x >> 4);
        if !(dash & (x >> 1)).is_zero() {
            return true;
        }
    }
    // Sixteen capitals or digits in a row.
    if n >= 16 {
        let ud = (win.u() | win.d()) & tm;
        if ud.count() >= 16 {
            let x = ud & (ud >> 1);
            let x = x & (x >> 2);
            let x = x & (x >> 4);
            let x = x & (x >> 8);
            if !x.is_zero() {
                return true;
            }
        }
    }
    false
}

/// A superset of `shape_of(v).is_some()` from the masks of `v` (`vm`) and its first bytes.
#[inline]
fn shape_maybe<W: Win>(v: &[u8], vm: W::M, win: W) -> bool {
    let n = v.len();
    if (8..=33).contains(&n) && v[0] == b'Z' || (13..=15).contains(&n) && v[0] == b'E' {
        return true;
    }
    let only = |m: W::M| (vm & !m).is_zero();
    match n {
        12 => only(win.d()),
        14 => v[4] == b'-',
        36 => (vm & win.dash()).count() == 4,
        40 => !(vm & win.u()).is_zero() && !(vm & win.al() & !win.u()).is_zero(),
        64 => only(win.d() | win.al()),
        17 => !(vm & win.colon()).is_zero(),
        10 => only(win.d() | win.al()) && !(vm & win.d()).is_zero(),
        n => n >= 100,
    }
}

/// The kind and value shape `normalize(raw)` names as a JSON key, CLI flag or text key: `key_then_value`'s lookup,
/// and the scan's test of whether that lookup may find anything. Most keys are turned away on their last three
/// characters, and no key is normalized whole (a base64 blob before its `=` padding is not read twice).
pub(super) fn key_lookup(raw: &[u8]) -> Option<(KindId, ValueShape)> {
    // The last three characters: read directly when they are alphanumerics (`latency_ms`, `region`), else in
    // one walk back over the others (`request_id`, `user_id`: most keys of a log line). `rest`: the bytes before
    // the third, where the fourth is.
    let n = raw.len();
    let (third, p, l, rest) = if n >= 3 && raw[n - 3..].iter().all(u8::is_ascii_alphanumeric) {
        (pair_index(raw[n - 3]), raw[n - 2], raw[n - 1], n - 3)
    } else {
        let mut t = [0u8; 3];
        let (mut k, mut i) = (0, n);
        while i > 0 && k < 3 {
            i -= 1;
            if raw[i].is_ascii_alphanumeric() {
                t[k] = raw[i];
                k += 1;
            }
        }
        match k {
            3 => (pair_index(t[2]), t[1], t[0], i),
            2 => (NO_CHAR, t[1], t[0], 0),
            _ => return None,
        }
    };
    let (p, l) = (pair_index(p), pair_index(l));
    if !tail3_known(third, p, l) {
        return None;
    }
    // Log keys pass that test often (`request_id`, `user_id`, `trace_id` end like `accountid`, `ownerid`,
    // `keyid`); the last four characters turn most of them away.
    let fourth = match third {
        NO_CHAR => NO_CHAR,
        _ => raw[..rest]
            .iter()
            .rposition(u8::is_ascii_alphanumeric)
            .map_or(NO_CHAR, |i| pair_index(raw[i])),
    };
    if !tail4_known(fourth, third, p, l) {
        return None;
    }
    // The normalized key, from its end, cut at `KEY_MAX` characters: every key is shorter (the tails' table checks
    // that), so a cut name equals none, and it still ends with the suffixes the whole name ends with.
    let mut buf = [0u8; KEY_MAX];
    let mut len = 0;
    for &c in raw.iter().rev().filter(|c| c.is_ascii_alphanumeric()).take(KEY_MAX) {
        len += 1;
        buf[KEY_MAX - len] = c.to_ascii_lowercase();
    }
    let norm = &buf[KEY_MAX - len..];
    keyed(norm).or_else(|| flag_alias(norm)).or_else(|| text_key(norm))
}

/// Whether a key that ends right before `p` may be one [`key_lookup`] knows, from its last bytes when they are
/// letters or digits: [`key_lookup`]'s tests of the last three and four characters. Also for every shorter key
/// of two characters or more: a token may start inside a run, after an earlier find. When other token bytes
/// come between (`user_id`), only the last two count; a key of one such byte (`+=`) has no character, unless
/// it is an operator. A superset of `key_lookup(key)`.
#[inline]
fn key_end_known(text: &[u8], p: usize) -> bool {
    let at = |k: usize| p.checked_sub(k).map_or(KEY_STOP, |i| KEY_BYTE[text[i] as usize]);
    let (l, q) = (at(1), at(2));
    if l >= KEY_OTHER || q >= KEY_OTHER {
        // (After an operator that starts the run, `==`, the key is the previous token's.)
        return !(l == KEY_OTHER && q == KEY_STOP && !matches!(text[p - 1], b':' | b'='));
    }
    let (l, q) = (l as usize, q as usize);
    let third = at(3);
    if third >= KEY_OTHER {
        // The third character is further back, or there is none.
        return KEY_PAIRS[q] >> l & 1 != 0;
    }
    let third = third as usize;
    if tail3_known(third, q, l) {
        match at(4) {
            f if f < KEY_OTHER => {
                if tail4_known(f as usize, third, q, l) || tail4_known(NO_CHAR, third, q, l) {
                    return true;
                }
            }
            _ => return true,
        }
    }
    // A key of the last two characters only.
    tail3_known(NO_CHAR, q, l) && tail4_known(NO_CHAR, NO_CHAR, q, l)
}

/// Whether a key [`key_lookup`] knows ends with the characters `third`, `q`, `l` ([`pair_index`]; `third`
/// [`NO_CHAR`] for a key of two): [`KEY_TAILS`].
#[inline(always)]
fn tail3_known(third: usize, q: usize, l: usize) -> bool {
    KEY_TAILS[third][q] >> l & 1 != 0
}

/// Whether one may end with `fourth`, `third`, `q`, `l` ([`NO_CHAR`] for a missing one): [`KEY_TAILS4`], hashed,
/// so a superset.
#[inline(always)]
fn tail4_known(fourth: usize, third: usize, q: usize, l: usize) -> bool {
    let x = tail4(fourth, third, q, l);
    KEY_TAILS4[x / 64] >> (x % 64) & 1 != 0
}

/// A byte as [`key_end_known`] reads it: a letter's or digit's [`pair_index`], [`KEY_OTHER`] for the other
/// token bytes, [`KEY_STOP`] for separators.
static KEY_BYTE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = if (c as u8).is_ascii_alphanumeric() {
            PAIR[c]
        } else if CLASS[c] & SEP != 0 {
            KEY_STOP
        } else {
            KEY_OTHER
        };
        c += 1;
    }
    t
};
const KEY_OTHER: u8 = 36;
const KEY_STOP: u8 = 37;

/// The last two characters of every key [`key_lookup`] knows: [`KEY_TAILS`]' rows, whatever the third.
static KEY_PAIRS: [u64; 36] = {
    let mut t = [0u64; 36];
    let mut third = 0;
    while third <= NO_CHAR {
        let mut q = 0;
        while q < 36 {
            t[q] |= KEY_TAILS[third][q];
            q += 1;
        }
        third += 1;
    }
    t
};

/// More characters than any key, flag or text-key suffix [`key_lookup`] may have to recognize.
const KEY_MAX: usize = 24;

/// The last three characters of every key [`key_lookup`] knows (exact keys, flag aliases, text-key suffixes):
/// bit `pair_index(last)` of `KEY_TAILS[third to last][second to last]`, the first index [`NO_CHAR`] for an
/// exact key of two. Most tokens are turned away by it before they are normalized and compared ("region" and
/// "client" pass a test of the last two).
static KEY_TAILS: [[u64; 36]; NO_CHAR + 1] = {
    let mut t = [[0u64; 36]; NO_CHAR + 1];
    let mut i = 0;
    while i < KNOWN_KEYS {
        let (w, suffix) = known_key(i);
        assert!(
            w.len() >= 2 && w.len() < KEY_MAX,
            "key_lookup sees keys of 2 to KEY_MAX - 1 characters"
        );
        // A suffix of two would end keys with any character before it, and [`KEY_TAILS4`] reads four.
        assert!(
            !suffix || w.len() >= 4,
            "text-key suffixes have four characters or more"
        );
        let n = w.len();
        let before = if n >= 3 { pair_index(w[n - 3]) } else { NO_CHAR };
        t[before][pair_index(w[n - 2])] |= 1 << pair_index(w[n - 1]);
        i += 1;
    }
    t
};

/// How many keys [`key_lookup`] knows: exact keys, flag aliases, text-key suffixes ([`known_key`]).
const KNOWN_KEYS: usize = KEYED.len() + FLAG_ALIASES.len() + TEXT_KEY_SUFFIXES.len();

/// Known key `i` (normalized), and whether it is a text-key suffix (which a longer key may end with).
const fn known_key(i: usize) -> (&'static [u8], bool) {
    let (k, f) = (KEYED.len(), FLAG_ALIASES.len());
    if i < k {
        (KEYED[i].0.as_bytes(), false)
    } else if i < k + f {
        (FLAG_ALIASES[i - k].as_bytes(), false)
    } else {
        (TEXT_KEY_SUFFIXES[i - k - f].0.as_bytes(), true)
    }
}

/// [`KEY_TAILS`]' row for "no third character".
const NO_CHAR: usize = 36;

/// The bit of [`KEY_TAILS4`] for a key's last four characters (`pair_index`, [`NO_CHAR`] for none).
const fn tail4(fourth: usize, third: usize, p: usize, l: usize) -> usize {
    let x = (((fourth * 37 + third) * 37 + p) * 37 + l) as u32;
    (x.wrapping_mul(0x9E37_79B1) >> 20) as usize
}

/// The last four characters of every key [`key_lookup`] knows, hashed ([`tail4`]) into 4,096 bits: a second
/// test after [`KEY_TAILS`]. An exact key of two or three characters has [`NO_CHAR`] for the missing ones, as
/// has a token whose normalized key is that short; text-key suffixes have four characters or more.
static KEY_TAILS4: [u64; 64] = {
    let mut t = [0u64; 64];
    let mut i = 0;
    while i < KNOWN_KEYS {
        let (w, _) = known_key(i);
        let n = w.len();
        let third = if n >= 3 { pair_index(w[n - 3]) } else { NO_CHAR };
        let fourth = if n >= 4 { pair_index(w[n - 4]) } else { NO_CHAR };
        let b = tail4(fourth, third, pair_index(w[n - 2]), pair_index(w[n - 1]));
        t[b / 64] |= 1 << (b % 64);
        i += 1;
    }
    t
};

/// Lengths of the prose keywords and their fillers by `(first, last)` letter: a superset test of
/// "`norm_eq(raw, word)` for one of them".
static PROSE_LENGTHS: [[u32; 36]; 36] = {
    let mut t = [[0u32; 36]; 36];
    let mut i = 0;
    while i < PROSE_NAMES.len() {
        let (kw, fillers, _, _) = PROSE_NAMES[i];
        let w = kw.as_bytes();
        t[pair_index(w[0])][pair_index(w[w.len() - 1])] |= 1 << w.len();
        let mut f = 0;
        while f < fillers.len() {
            let w = fillers[f].as_bytes();
            t[pair_index(w[0])][pair_index(w[w.len() - 1])] |= 1 << w.len();
            f += 1;
        }
        i += 1;
    }
    t
};

/// [`pair_index`] as a table: the detector asks for it on most tokens it checks.
const PAIR: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = match b {
            b'a'..=b'z' => b - b'a',
            b'A'..=b'Z' => b - b'A',
            b'0'..=b'9' => 26 + b - b'0',
            _ => 0,
        };
        c += 1;
    }
    t
};

/// The row or column of an ASCII letter (either case) or digit in the tables by first and last character.
const fn pair_index(c: u8) -> usize {
    PAIR[c as usize] as usize
}

/// Could `raw` (the token before a candidate value) be a prose keyword or filler? A superset test.
#[inline]
pub(super) fn prose_word_maybe(raw: &[u8]) -> bool {
    let n = raw.len();
    if !(2..=18).contains(&n) {
        return false;
    }
    let (f, l) = (raw[0], raw[n - 1]);
    if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() {
        // The usual case: a word. Its length bounds the keyword's (up to four other bytes inside).
        // `norm_eq` wants a keyword of `n - 4` to `n` letters.
        let lo = n.saturating_sub(4);
        if (PROSE_LENGTHS[pair_index(f)][pair_index(l)] >> lo) & ((1u32 << (n - lo + 1)) - 1) == 0 {
            return false;
        }
    }
    let (Some(&f), Some(&l)) = (
        raw.iter().find(|c| c.is_ascii_alphanumeric()),
        raw.iter().rfind(|c| c.is_ascii_alphanumeric()),
    ) else {
        return false;
    };
    let lengths = PROSE_LENGTHS[pair_index(f)][pair_index(l)];
    lengths != 0 && lengths >> raw.iter().filter(|c| c.is_ascii_alphanumeric()).count() & 1 != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The masks of `text` (at most 768 bytes), and the `One`/`Two` window of `[s, e)`.
    fn with_masks<R>(text: &[u8], s: usize, e: usize, f: impl FnOnce(&Masks<16>, usize, usize, bool) -> R) -> R {
        let mut m = Masks::<16>::new();
        m.fill(&Classifier::new(), text, 0);
        let k = ((s as isize - m.start(0)) / 64) as usize;
        let kl = ((e.max(s + 1) - 1) as isize - m.start(0)) as usize / 64;
        f(&m, k, m.start(k) as usize, kl == k + 1)
    }

    fn token() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9:./=_%@+#~*&?!$-]{0,40}",
            "(aws|AWS|amz|alias/|s3|S3|ip|int|internal|cloudfront|CLOUDFRONT|beanstalk|IQoJb3|ABSK|r-|ou-|da2-|x|-|_|:|\\.|[0-9]{1,4}|[A-Z0-9]{4,8}|[a-z]{1,5}|[a-f]{4,9}|[0-9a-f]{4,9}){1,8}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// `interesting_exact` on the masks is `interesting` on the bytes, wherever the token sits.
        #[test]
        fn interesting_exact_is_interesting(tok in token(), pad in 0usize..70) {
            let text = format!("{}{tok} ", " ".repeat(pad));
            let (s, e) = (pad, pad + tok.len());
            let got = with_masks(text.as_bytes(), s, e, |m, k, org, two| {
                if two {
                    let two = interesting_exact(&text.as_bytes()[s..e], Two(m, k), <u128 as Bits>::below(e - org) & !<u128 as Bits>::below(s - org), org, s);
                    // The same token through the shifted window `acts` takes when it fits in 64 bits.
                    if e - s <= 64 {
                        let shifted = interesting_exact(&text.as_bytes()[s..e], Shifted(m, k, (s - org) as u32), <u64 as Bits>::below(e - s), s, s);
                        assert_eq!(shifted, two, "{tok:?}");
                    }
                    two
                } else {
                    interesting_exact(&text.as_bytes()[s..e], One(m, k), <u64 as Bits>::below(e - org) & !<u64 as Bits>::below(s - org), org, s)
                }
            });
            prop_assert_eq!(got, interesting(tok.as_bytes()), "{:?}", tok);
        }

        /// `key_lookup` is the table lookup of the whole normalized key.
        #[test]
        fn key_lookup_is_the_lookup(raw in "(--|_|-|:)?(aws|s3|log|account|owner|id|ids|secret|access|key|session|token|hosted|zone|bucket|name|function|table|db|instance|cluster|stack|rds|redshift|elasticache|glue|job|lambda|dynamodb|eks|ecs|[a-zA-Z0-9]{1,3})([-_.]?(aws|s3|log|account|owner|id|ids|secret|access|key|session|token|hosted|zone|bucket|name|function|table|db|instance|cluster|stack|rds|redshift|elasticache|glue|job|lambda|dynamodb|eks|ecs|identifier|distribution|rest|api|mac|address|source|principal|registry|target|master|cache|replication|group|role|user|queue|topic|repository|parameter)){0,4}") {
            let mut norm = Vec::new();
            normalize(raw.as_bytes(), &mut norm);
            let want = keyed(&norm).or_else(|| flag_alias(&norm)).or_else(|| text_key(&norm));
            prop_assert_eq!(key_lookup(raw.as_bytes()), want, "{:?}", raw);
        }

        /// `prose_word_maybe` holds for every word `context` compares with `norm_eq`.
        #[test]
        fn prose_word_maybe_is_a_superset(raw in "[A-Za-z0-9_:=.-]{0,20}|(--)?(bucket|buckets|s3|S3|rds|RDS|lambda|logs|db|instance|cluster|function|table|repo|repository|stack|job|topic|queue|cloudformation)[:=._-]{0,3}") {
            let b = raw.as_bytes();
            let hit = PROSE_NAMES.iter().any(|(kw, fillers, _, _)| norm_eq(b, kw) || fillers.iter().any(|f| norm_eq(b, f)));
            if hit {
                prop_assert!(prose_word_maybe(b), "{:?}", raw);
            }
        }

        /// `shape_maybe` holds for every value `shape_of` gives a shape.
        #[test]
        fn shape_maybe_is_a_superset(v in "[0-9]{12}|[0-9]{4}-[0-9]{4}-[0-9]{4}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[A-Za-z0-9/+]{40}|[0-9a-f]{64}|[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}|[a-z0-9]{10}|E[A-Z0-9]{12,14}|Z[A-Z0-9]{7,32}|[A-Za-z0-9/+=%]{100,120}|[A-Za-z0-9:./_-]{0,40}") {
            let text = format!(" {v} ");
            let (s, e) = (1, 1 + v.len());
            if shape_of(v.as_bytes()).is_some() {
                let maybe = with_masks(text.as_bytes(), s, e, |m, k, org, two| {
                    if two {
                        let two = shape_maybe(v.as_bytes(), <u128 as Bits>::below(e - org) & !<u128 as Bits>::below(s - org), Two(m, k));
                        if e - s <= 64 {
                            let shifted = shape_maybe(v.as_bytes(), <u64 as Bits>::below(e - s), Shifted(m, k, (s - org) as u32));
                            assert_eq!(shifted, two, "{v:?}");
                        }
                        two
                    } else {
                        shape_maybe(v.as_bytes(), <u64 as Bits>::below(e - org) & !<u64 as Bits>::below(s - org), One(m, k))
                    }
                });
                prop_assert!(maybe, "{:?}", v);
            }
        }
    }

    /// `KEY_TAILS` holds the last two characters of every key: every key `key_lookup` must know passes its first
    /// test, also as a raw token (`My-gluejob:`).
    #[test]
    fn key_tails_hold_every_key() {
        for i in 0..KNOWN_KEYS {
            let (k, suffix) = known_key(i);
            assert!(key_lookup(k).is_some(), "{}", String::from_utf8_lossy(k));
            if suffix {
                let raw = format!("My-{}:", String::from_utf8_lossy(k));
                assert!(key_lookup(raw.as_bytes()).is_some(), "{raw}");
            }
        }
    }
}
