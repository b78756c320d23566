//! The placeholder grammar: `AWS(_KIND)+_NNN`.
//!
//! A placeholder is `AWS`, one or more `_SEGMENT` parts where each segment starts with an upper-case letter and
//! continues with upper-case letters or digits, then `_` and three or more decimal digits. Because kind segments
//! start with a letter and the counter is all digits, the split is unambiguous. A placeholder is only recognised
//! when it stands alone: the byte before and the byte after must not be `[A-Za-z0-9_]`, so `AWS_EC2_100` never
//! matches inside `AWS_EC2_1000` or `xAWS_EC2_100`. The one exception is the letter of a backslash escape
//! (`\n`, `\t`, `\r`, `\b`, `\f`) spelled out in text: the detectors take `\nmy-bucket` for a separator and a
//! value, so in `\nAWS_S3_BUCKET_001` the placeholder stands alone (see [`touches_left`]).

/// Longest placeholder we ever recognise or emit. Longer look-alikes are ordinary text.
pub const MAX_LEN: usize = 64;

/// Bytes that may not touch a placeholder on either side.
#[inline]
pub fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// True when the byte before `text[start]` keeps a placeholder starting there from standing alone: a word byte,
/// unless it is the letter of a backslash escape (`\nAWS_EC2_001` in a text that spells out its escapes).
#[inline]
pub fn touches_left(text: &[u8], start: usize) -> bool {
    start > 0
        && is_word_byte(text[start - 1])
        && !(start >= 2 && text[start - 2] == b'\\' && is_escape_letter(text[start - 1]))
}

/// Letters of the escapes `\n`, `\t`, `\r`, `\b`, `\f`: after a backslash they separate words.
#[inline]
pub fn is_escape_letter(b: u8) -> bool {
    matches!(b, b'n' | b't' | b'r' | b'b' | b'f')
}

/// Formats a placeholder: `prefix` is e.g. `AWS_EC2`, `n` the per-tenant, per-kind counter (1-based).
pub fn format(prefix: &str, n: u64) -> String {
    // Not `format!`: the vault formats one per new value, and the formatting machinery costs ten times as much.
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(n);
    let pad = 3usize.saturating_sub(digits.len());
    let mut s = String::with_capacity(prefix.len() + 1 + pad + digits.len());
    s.push_str(prefix);
    s.push('_');
    s.extend(std::iter::repeat_n('0', pad));
    s.push_str(digits);
    s
}

/// True when `prefix` is a valid kind prefix (`AWS_EC2`, `AWS_IAM_ROLE`, ...): the placeholder minus its counter.
pub fn is_valid_prefix(prefix: &str) -> bool {
    let b = prefix.as_bytes();
    if b.len() < 5 || b.len() > MAX_LEN - 8 || !prefix.starts_with("AWS_") {
        return false;
    }
    // Segments after "AWS": each `_X[A-Z0-9]*` with X an upper-case letter.
    let rest = &prefix[3..];
    rest.split('_').skip(1).all(|seg| {
        let s = seg.as_bytes();
        !s.is_empty() && s[0].is_ascii_uppercase() && s.iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    }) && rest.starts_with('_')
}

/// If a placeholder body starts at `text[0]` (boundary before is the caller's concern), returns its length.
/// Checks the boundary after it.
pub fn match_at(text: &[u8]) -> Option<usize> {
    let n = body_len(text)?;
    if n < text.len() && is_word_byte(text[n]) {
        return None;
    }
    Some(n)
}

/// Length of the longest grammar match starting at `text[0]`, ignoring what follows.
fn body_len(text: &[u8]) -> Option<usize> {
    if !text.starts_with(b"AWS_") {
        return None;
    }
    let limit = text.len().min(MAX_LEN + 1);
    let mut i = 3; // at '_'
    let mut segments = 0;
    loop {
        // text[i] == '_'
        let seg_start = i + 1;
        if seg_start >= limit {
            return None;
        }
        let c = text[seg_start];
        if c.is_ascii_uppercase() {
            let mut j = seg_start + 1;
            while j < limit && (text[j].is_ascii_uppercase() || text[j].is_ascii_digit()) {
                j += 1;
            }
            if j >= limit || text[j] != b'_' {
                return None;
            }
            segments += 1;
            i = j;
        } else if c.is_ascii_digit() {
            if segments == 0 {
                return None;
            }
            let mut j = seg_start;
            while j < limit && text[j].is_ascii_digit() {
                j += 1;
            }
            if j - seg_start < 3 || j > MAX_LEN {
                return None;
            }
            // A digit run followed by '_' + letter would be a segment that starts with a digit: not ours.
            return Some(j);
        } else {
            return None;
        }
    }
}

/// Iterates over `(start, end)` of every placeholder in `text`, left to right, non-overlapping.
pub fn find_all(text: &[u8]) -> PlaceholderIter<'_> {
    PlaceholderIter {
        text,
        pos: 0,
        finder: memchr::memmem::Finder::new(b"AWS_"),
    }
}

pub struct PlaceholderIter<'a> {
    text: &'a [u8],
    pos: usize,
    finder: memchr::memmem::Finder<'static>,
}

impl Iterator for PlaceholderIter<'_> {
    type Item = (usize, usize);
    fn next(&mut self) -> Option<(usize, usize)> {
        while self.pos < self.text.len() {
            let rel = self.finder.find(&self.text[self.pos..])?;
            let start = self.pos + rel;
            self.pos = start + 1;
            if touches_left(self.text, start) {
                continue;
            }
            if let Some(n) = match_at(&self.text[start..]) {
                self.pos = start + n;
                return Some((start, start + n));
            }
        }
        None
    }
}

/// Returns true when `text` is exactly one placeholder.
pub fn is_placeholder(text: &str) -> bool {
    match_at(text.as_bytes()) == Some(text.len())
}

/// For streaming: how many bytes at the end of `text` must be held back because more input could complete
/// (or extend) a placeholder there. Zero when the tail cannot be the start of a placeholder.
pub fn holdback_len(text: &[u8]) -> usize {
    let from = text.len().saturating_sub(MAX_LEN);
    for p in from..text.len() {
        if text[p] != b'A' || touches_left(text, p) {
            continue;
        }
        if could_continue(&text[p..]) {
            return text.len() - p;
        }
    }
    0
}

/// True when `tail` (which reaches the end of the available text) is a prefix of some placeholder, including a
/// complete placeholder whose counter could still grow.
fn could_continue(tail: &[u8]) -> bool {
    if tail.len() > MAX_LEN {
        return false;
    }
    const HEAD: &[u8] = b"AWS_";
    if tail.len() <= HEAD.len() {
        return HEAD.starts_with(tail);
    }
    if !tail.starts_with(HEAD) {
        return false;
    }
    // After "AWS_": segments of [A-Z][A-Z0-9]* separated by '_', possibly ending in a partial segment or a
    // digit run (complete or partial counter).
    let mut segments = 0;
    let mut i = 4;
    loop {
        if i == tail.len() {
            return true; // ends right after '_'
        }
        let c = tail[i];
        if c.is_ascii_uppercase() {
            let mut j = i + 1;
            while j < tail.len() && (tail[j].is_ascii_uppercase() || tail[j].is_ascii_digit()) {
                j += 1;
            }
            if j == tail.len() {
                return true; // inside a segment
            }
            if tail[j] != b'_' {
                return false;
            }
            segments += 1;
            i = j + 1;
        } else if c.is_ascii_digit() && segments > 0 {
            let mut j = i;
            while j < tail.len() && tail[j].is_ascii_digit() {
                j += 1;
            }
            return j == tail.len();
        } else {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(s: &str) -> Vec<&str> {
        find_all(s.as_bytes()).map(|(a, b)| &s[a..b]).collect()
    }

    #[test]
    fn format_pads_to_three_digits() {
        for n in [0u64, 1, 9, 10, 99, 100, 999, 1000, 12345, u64::MAX] {
            assert_eq!(format("AWS_EC2", n), std::format!("AWS_EC2_{n:03}"));
        }
    }

    #[test]
    fn grammar() {
        assert!(is_placeholder("AWS_EC2_001"));
        assert!(is_placeholder("AWS_IAM_ROLE_003"));
        assert!(is_placeholder("AWS_EC2_1000"));
        assert!(!is_placeholder("AWS_EC2_01"));
        assert!(!is_placeholder("AWS_001"));
        assert!(!is_placeholder("AWS_ec2_001"));
        assert!(!is_placeholder("AWS_2EC_001"));
        assert!(is_valid_prefix("AWS_EC2"));
        assert!(is_valid_prefix("AWS_IAM_ROLE"));
        assert!(!is_valid_prefix("AWS_"));
        assert!(!is_valid_prefix("AWS_ec2"));
        assert!(!is_valid_prefix("EC2"));
    }

    #[test]
    fn boundaries() {
        assert_eq!(
            all("see AWS_EC2_100 and AWS_EC2_1000."),
            ["AWS_EC2_100", "AWS_EC2_1000"]
        );
        assert!(all("xAWS_EC2_100 AWS_EC2_100x AWS_EC2_100_ 1AWS_EC2_001").is_empty());
        assert_eq!(
            all("(AWS_VPC_002)-\"AWS_S3_BUCKET_010\""),
            ["AWS_VPC_002", "AWS_S3_BUCKET_010"]
        );
        assert_eq!(all("AWS_EC2_001AWS_EC2_002"), Vec::<&str>::new());
        // Escapes spelled out in text separate, as they do for the detectors.
        assert_eq!(
            all(r"x\nAWS_EC2_001\tAWS_VPC_002 \\bAWS_SG_003"),
            ["AWS_EC2_001", "AWS_VPC_002", "AWS_SG_003"]
        );
        assert!(all(r"nAWS_EC2_001 \xAWS_EC2_001 \AWS_EC2_001x").is_empty());
    }

    #[test]
    fn holdback() {
        assert_eq!(holdback_len(b"hello "), 0);
        assert_eq!(holdback_len(b"hello A"), 1);
        assert_eq!(holdback_len(b"hello AWS"), 3);
        assert_eq!(holdback_len(b"hello AWS_EC"), 6);
        assert_eq!(holdback_len(b"hello AWS_EC2_"), 8);
        assert_eq!(holdback_len(b"hello AWS_EC2_00"), 10);
        assert_eq!(holdback_len(b"hello AWS_EC2_001"), 11);
        assert_eq!(holdback_len(b"hello AWS_EC2_001 "), 0);
        assert_eq!(holdback_len(b"helloA"), 0);
        assert_eq!(holdback_len(b"AWS_x"), 0);
        assert_eq!(holdback_len(b"AW"), 2);
        assert_eq!(holdback_len(br"x\nAWS_E"), 5);
        assert_eq!(holdback_len(br"x\qAWS_E"), 0);
    }
}
