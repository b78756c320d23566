//! Finding the next byte that can be part of an identifier, 16 bytes at a time.
//!
//! Prose is mostly lower-case letters, spaces and non-ASCII text, none of which can start or complete an
//! identifier on its own. An identifier always holds at least one *interesting* byte: a digit, an upper-case
//! letter, or one of `- . / : = % @ _ +`. The detector jumps from one interesting byte to the next and only
//! then looks at the token around it. (A lower-case-only name like `my-bucket` holds a `-`.)

/// A byte the detector jumps to: a digit, a capital, or one of `- . / : = % @ _ +`.
#[inline]
pub(crate) fn interesting(b: u8) -> bool {
    matches!(b, b'-'..=b':' | b'@'..=b'Z' | b'%' | b'=' | b'_' | b'+')
}

/// Position of the first interesting byte of `hay` at or after `from`.
#[inline]
pub fn next_interesting(hay: &[u8], from: usize) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: SSE2 is part of the x86_64 baseline; loads are unaligned and stay within `hay`.
        unsafe { sse2::next(hay, from) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        hay.get(from..)?.iter().position(|&b| interesting(b)).map(|p| from + p)
    }
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use super::interesting;
    use std::arch::x86_64::*;

    #[inline]
    unsafe fn in_range(v: __m128i, lo: u8, hi: u8) -> __m128i {
        // (v - lo) as unsigned <= hi - lo  <=>  min(v - lo, hi - lo) == v - lo
        let x = _mm_sub_epi8(v, _mm_set1_epi8(lo as i8));
        _mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8((hi - lo) as i8)), x)
    }

    #[inline]
    pub unsafe fn next(hay: &[u8], from: usize) -> Option<usize> {
        let n = hay.len();
        let mut i = from;
        let ptr = hay.as_ptr();
        while i + 16 <= n {
            let v = _mm_loadu_si128(ptr.add(i) as *const __m128i);
            let m = _mm_or_si128(
                _mm_or_si128(in_range(v, b'-', b':'), in_range(v, b'@', b'Z')),
                _mm_or_si128(
                    _mm_or_si128(
                        _mm_cmpeq_epi8(v, _mm_set1_epi8(b'%' as i8)),
                        _mm_cmpeq_epi8(v, _mm_set1_epi8(b'=' as i8)),
                    ),
                    _mm_or_si128(
                        _mm_cmpeq_epi8(v, _mm_set1_epi8(b'_' as i8)),
                        _mm_cmpeq_epi8(v, _mm_set1_epi8(b'+' as i8)),
                    ),
                ),
            );
            let bits = _mm_movemask_epi8(m) as u32;
            if bits != 0 {
                return Some(i + bits.trailing_zeros() as usize);
            }
            i += 16;
        }
        while i < n {
            if interesting(hay[i]) {
                return Some(i);
            }
            i += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_scalar_definition() {
        let all: Vec<u8> = (0..=255u8).collect();
        for start in 0..all.len() {
            let want = all[start..].iter().position(|&b| interesting(b)).map(|p| start + p);
            assert_eq!(next_interesting(&all, start), want);
        }
        let text = "plain words only here, and more plain words so that it spans chunks x".repeat(3);
        assert_eq!(next_interesting(text.as_bytes(), 0), None);
        let t2 = format!("{text}i-1234");
        assert_eq!(next_interesting(t2.as_bytes(), 0), Some(text.len() + 1));
        assert_eq!(next_interesting(b"", 0), None);
        assert_eq!(next_interesting(b"abc", 3), None);
    }
}
