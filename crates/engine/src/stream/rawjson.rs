//! A minimal navigator over raw JSON text: finds values and their byte offsets without building anything, so
//! an event can be rewritten by splicing a few strings. Expects text already validated as JSON; on anything
//! unexpected it returns `None` rather than panicking.

use std::borrow::Cow;

use memchr::memchr3;

use crate::unmask::string_end;

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The end of the value starting at `b[i]`.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => string_end(b, i),
        open @ (b'{' | b'[') => {
            let close = if open == b'{' { b'}' } else { b']' };
            let mut depth = 0usize;
            let mut j = i;
            loop {
                let k = memchr3(b'"', open, close, b.get(j..)?)?;
                j += k;
                match b[j] {
                    b'"' => j = string_end(b, j)?,
                    c if c == open => {
                        depth += 1;
                        j += 1;
                    }
                    _ => {
                        depth -= 1;
                        j += 1;
                        if depth == 0 {
                            return Some(j);
                        }
                    }
                }
            }
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

/// A JSON value at `src[start..end]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Val<'a> {
    pub src: &'a str,
    pub start: usize,
    pub end: usize,
}

impl<'a> Val<'a> {
    /// The top-level value of `src`.
    pub fn root(src: &'a str) -> Option<Val<'a>> {
        let b = src.as_bytes();
        let start = skip_ws(b, 0);
        let end = value_end(b, start)?;
        (skip_ws(b, end) == b.len()).then_some(Val { src, start, end })
    }

    fn first(&self) -> u8 {
        self.src.as_bytes()[self.start]
    }

    pub fn raw(&self) -> &'a str {
        &self.src[self.start..self.end]
    }

    pub fn is_str(&self) -> bool {
        self.first() == b'"'
    }

    pub fn is_obj(&self) -> bool {
        self.first() == b'{'
    }

    pub fn is_arr(&self) -> bool {
        self.first() == b'['
    }

    pub fn is_null(&self) -> bool {
        self.raw() == "null"
    }

    /// The raw content of a string (escapes not decoded).
    pub fn str_raw(&self) -> Option<&'a str> {
        self.is_str().then(|| &self.src[self.start + 1..self.end - 1])
    }

    /// True when this is the string `s` (compared raw: for the ASCII names of types and fields).
    pub fn is(&self, s: &str) -> bool {
        self.str_raw() == Some(s)
    }

    /// The decoded value of a string.
    pub fn str(&self) -> Option<Cow<'a, str>> {
        let raw = self.str_raw()?;
        if !raw.as_bytes().contains(&b'\\') {
            return Some(Cow::Borrowed(raw));
        }
        serde_json::from_str::<String>(self.raw()).ok().map(Cow::Owned)
    }

    pub fn as_u64(&self) -> Option<u64> {
        self.raw().parse().ok()
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.raw() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }

    /// `(key, value)` pairs of an object, in order (empty for other values).
    pub fn fields(&self) -> Fields<'a> {
        Fields {
            src: self.src,
            pos: if self.is_obj() { self.start + 1 } else { self.end },
            end: self.end,
        }
    }

    /// Elements of an array, in order (empty for other values).
    pub fn items(&self) -> Items<'a> {
        Items {
            src: self.src,
            pos: if self.is_arr() { self.start + 1 } else { self.end },
            end: self.end,
        }
    }

    /// The value of the first field named `key` (raw comparison).
    pub fn get(&self, key: &str) -> Option<Val<'a>> {
        self.fields().find(|(k, _)| k.is(key)).map(|(_, v)| v)
    }

    /// The values of the first fields named `keys`, in one pass.
    pub fn pick<const N: usize>(&self, keys: [&str; N]) -> [Option<Val<'a>>; N] {
        let mut found = [None; N];
        let mut left = N;
        for (k, v) in self.fields() {
            if let Some(i) = keys.iter().position(|key| k.is(key)) {
                if found[i].is_none() {
                    found[i] = Some(v);
                    left -= 1;
                    if left == 0 {
                        break;
                    }
                }
            }
        }
        found
    }

    /// A string field.
    pub fn get_str(&self, key: &str) -> Option<Val<'a>> {
        self.get(key).filter(Val::is_str)
    }
}

pub(crate) struct Fields<'a> {
    src: &'a str,
    pos: usize,
    end: usize,
}

impl<'a> Iterator for Fields<'a> {
    type Item = (Val<'a>, Val<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        let b = self.src.as_bytes();
        let mut i = skip_ws(b, self.pos);
        if i >= self.end || b[i] == b'}' {
            self.pos = self.end;
            return None;
        }
        let step = (|| {
            let ke = string_end(b, i)?;
            let key = Val {
                src: self.src,
                start: i,
                end: ke,
            };
            i = skip_ws(b, ke);
            if b.get(i) != Some(&b':') {
                return None;
            }
            let vs = skip_ws(b, i + 1);
            let ve = value_end(b, vs)?;
            let val = Val {
                src: self.src,
                start: vs,
                end: ve,
            };
            let mut n = skip_ws(b, ve);
            if b.get(n) == Some(&b',') {
                n += 1;
            }
            Some((key, val, n))
        })();
        match step {
            Some((k, v, n)) if n <= self.end => {
                self.pos = n;
                Some((k, v))
            }
            _ => {
                self.pos = self.end;
                None
            }
        }
    }
}

pub(crate) struct Items<'a> {
    src: &'a str,
    pos: usize,
    end: usize,
}

impl<'a> Iterator for Items<'a> {
    type Item = Val<'a>;
    fn next(&mut self) -> Option<Val<'a>> {
        let b = self.src.as_bytes();
        let vs = skip_ws(b, self.pos);
        if vs >= self.end || b[vs] == b']' {
            self.pos = self.end;
            return None;
        }
        let Some(ve) = value_end(b, vs).filter(|&e| e <= self.end) else {
            self.pos = self.end;
            return None;
        };
        let mut n = skip_ws(b, ve);
        if b.get(n) == Some(&b',') {
            n += 1;
        }
        self.pos = n;
        Some(Val {
            src: self.src,
            start: vs,
            end: ve,
        })
    }
}

/// Writes the object `obj` with some fields replaced: for each field whose key is in `repl`, `Some(json)`
/// writes that raw JSON as its value and `None` drops the field. Other fields are copied raw. Compact output.
pub(crate) fn object_with(obj: Val<'_>, repl: &[(&str, Option<&str>)], out: &mut String) {
    out.push('{');
    let mut first = true;
    for (k, v) in obj.fields() {
        let value = match repl.iter().find(|(name, _)| k.is(name)) {
            Some((_, None)) => continue,
            Some((_, Some(json))) => *json,
            None => v.raw(),
        };
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(k.raw());
        out.push(':');
        out.push_str(value);
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn navigate() {
        let src = r#" {"type": "x", "n" : 12, "o": {"a": [1, {"b": "}]\"{["}, "c\\d"], "e": null}, "t": true } "#;
        let root = Val::root(src).unwrap();
        assert!(root.get("type").unwrap().is("x"));
        assert_eq!(root.get("n").unwrap().as_u64(), Some(12));
        assert_eq!(root.get("t").unwrap().as_bool(), Some(true));
        let o = root.get("o").unwrap();
        assert!(o.get("e").unwrap().is_null());
        let a: Vec<Val> = o.get("a").unwrap().items().collect();
        assert_eq!(a.len(), 3);
        assert_eq!(a[1].get("b").unwrap().str().unwrap(), "}]\"{[");
        assert_eq!(a[2].str().unwrap(), "c\\d");
        assert_eq!(&src[a[2].start..a[2].end], r#""c\\d""#);
        assert!(root.get("missing").is_none());
        let mut out = String::new();
        object_with(root, &[("n", None), ("o", Some("[]"))], &mut out);
        assert_eq!(out, r#"{"type":"x","o":[],"t":true}"#);
        assert!(Val::root("{} x").is_none());
        assert!(Val::root("[1,2] ").unwrap().items().count() == 2);
        assert_eq!(Val::root("{}").unwrap().fields().count(), 0);
        assert_eq!(Val::root("[]").unwrap().items().count(), 0);
    }

    #[test]
    fn malformed_does_not_panic() {
        for s in [
            "{",
            "{\"a\"",
            "{\"a\":",
            "{\"a\":1,",
            "[",
            "[1,",
            "\"",
            "{\"a\" 1}",
            "{]",
            "[}",
            "}",
            "]",
            "",
        ] {
            if let Some(v) = Val::root(s) {
                let _ = v.fields().count();
                let _ = v.items().count();
            }
        }
    }
}
