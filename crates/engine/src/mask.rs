//! Request masking in two phases, so that a networked vault is called once per request:
//! [`Masker::plan_text`] / [`Masker::plan_json`] find every identifier and list the distinct values
//! ([`Plan::entries`]); the caller asks the vault for their placeholders; [`Plan::finish`] rewrites the body,
//! records which placeholders this request inserted ([`RequestMap`]) and checks the result for leaks.

use foldhash::HashMap;
use std::borrow::Cow;
use std::hash::BuildHasher;

use crate::detect::{ConfigError, CustomPattern, Detector, DetectorConfig, Finding, KeyContext};
use crate::json::{self, JsonError, SkipRules};
use crate::kinds::KindId;
use crate::needles::{Detached, Needles};
use crate::placeholder;
use crate::resolve::RequestMap;

/// The masking part of the configuration (`[masking]` in the gateway's file).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaskerConfig {
    /// Kind names not to detect (see `maskgate kinds`).
    pub disabled_kinds: Vec<String>,
    /// Extra patterns, each its own kind.
    pub custom_patterns: Vec<CustomPattern>,
    /// Values never masked.
    pub allowlist: Vec<String>,
    /// JSON paths whose values pass unchanged, in addition to the built-in ones (base64 payloads, signatures,
    /// `model`): `a.b.c`, `*` for any one key or index, `**` for any depth.
    pub skip_paths: Option<Vec<String>>,
    /// Let AWS-managed names pass (`arn:aws:iam::aws:policy/…`, `alias/aws/s3`); by default they are masked.
    pub keep_aws_managed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MaskError {
    /// The body is not valid JSON.
    InvalidJson(JsonError),
    /// The vault answered with the wrong number of placeholders, or with one that is not a placeholder.
    BadPlaceholders,
    /// An original value is still in the output (a bug, or an encoding we do not understand): refuse.
    Leak { kind: String },
}

impl std::fmt::Display for MaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaskError::InvalidJson(e) => write!(f, "{e}"),
            MaskError::BadPlaceholders => write!(f, "the vault returned invalid placeholders"),
            MaskError::Leak { kind } => write!(f, "masked output still contains an original value of kind {kind}"),
        }
    }
}

impl std::error::Error for MaskError {}

/// One distinct value to mask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanEntry<'a> {
    /// Kind name (`ec2_instance`).
    pub kind: &'a str,
    /// Placeholder prefix (`AWS_EC2`).
    pub prefix: &'a str,
    /// Borrowed from the body where it stands there as it is (not JSON-escaped).
    pub original: Cow<'a, str>,
}

pub struct Masker {
    detector: Detector,
    skip: SkipRules,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masker").finish_non_exhaustive()
    }
}

/// The pieces of a body that may be rewritten, which [`Masker::plan`] searches: the whole text, or the JSON
/// strings to mask. Read in place (a request of AWS API output has a million strings: no copy of each).
trait Segments<'a> {
    fn len(&self) -> usize;
    /// The text of segment `i`.
    fn text(&self, i: usize) -> &str;
    /// The same when it is the body's own bytes (the values found in it are then borrowed, not copied).
    fn in_body(&self, i: usize) -> Option<&'a str>;
    fn ctx(&self, i: usize) -> KeyContext<'_>;
    fn form(&self, i: usize) -> Form;
    /// Span in the body (a JSON string's with its quotes).
    fn raw(&self, i: usize) -> (usize, usize);
}

/// A text body: one segment.
struct TextBody<'a>(&'a str);

impl<'a> Segments<'a> for TextBody<'a> {
    fn len(&self) -> usize {
        1
    }
    fn text(&self, _: usize) -> &str {
        self.0
    }
    fn in_body(&self, _: usize) -> Option<&'a str> {
        Some(self.0)
    }
    fn ctx(&self, _: usize) -> KeyContext<'_> {
        KeyContext::default()
    }
    fn form(&self, _: usize) -> Form {
        Form::Text
    }
    fn raw(&self, _: usize) -> (usize, usize) {
        (0, self.0.len())
    }
}

/// The strings of a JSON body to search (`list`: their indices): every string but the skipped ones, and those
/// of them that hold placeholder-shaped text ([`Form::SkippedJson`]).
struct JsonBody<'a, 's> {
    strings: &'s json::JsonStrings<'a>,
    list: Vec<u32>,
}

impl<'a> Segments<'a> for JsonBody<'a, '_> {
    #[inline(always)]
    fn len(&self) -> usize {
        self.list.len()
    }
    #[inline(always)]
    fn text(&self, i: usize) -> &str {
        self.strings.text(self.list[i] as usize)
    }
    #[inline(always)]
    fn in_body(&self, i: usize) -> Option<&'a str> {
        self.strings.body_text(self.list[i] as usize)
    }
    #[inline(always)]
    fn ctx(&self, i: usize) -> KeyContext<'_> {
        let s = self.strings.get(self.list[i] as usize);
        KeyContext {
            key: s.key.map(|k| self.strings.text(k)),
            parent: s.parent_key.map(|k| self.strings.text(k)),
        }
    }
    #[inline(always)]
    fn form(&self, i: usize) -> Form {
        match self.strings.skipped(self.list[i] as usize) {
            true => Form::SkippedJson,
            false => Form::Json,
        }
    }
    #[inline(always)]
    fn raw(&self, i: usize) -> (usize, usize) {
        self.strings.raw(self.list[i] as usize)
    }
}

/// A range of a plan's findings (or an entry's position, [`small`]) in 32 bits, for the per-segment lists of a
/// body with a million strings: a JSON body is under 4 GiB ([`json::MAX_BODY`]) and a finding is several bytes,
/// and a text is one segment.
#[derive(Clone, Copy)]
struct Span(u32, u32);

impl Span {
    fn of(r: std::ops::Range<usize>) -> Span {
        Span(small(r.start), small(r.end))
    }
    fn range(self) -> std::ops::Range<usize> {
        self.0 as usize..self.1 as usize
    }
}

/// `n` in 32 bits: a count of findings or entries, below 2^32 for any body (see [`Span`]). Entry positions
/// keep `u32::MAX` free as a marker.
fn small(n: usize) -> u32 {
    u32::try_from(n)
        .ok()
        .filter(|&n| n != u32::MAX)
        .expect("fewer than 2^32 - 1 findings in one body")
}

/// The longest segment [`Masker::plan`] looks for among those before it (a hash of the text beats searching it
/// again only for short ones).
const REPEATED: usize = 64;

/// What a segment of a body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// A text body.
    Text,
    /// A JSON string.
    Json,
    /// A JSON string that skip rules pass unchanged (a base64 payload, `model`), except the placeholder-shaped
    /// text in it: a response could quote that text, and it must not resolve to a value masked elsewhere in
    /// the request under the same placeholder. The rest is not searched, and the leak check ignores it.
    SkippedJson,
}

/// `(raw_start, raw_end, decoded text when it differs from the raw bytes, form, hits)`.
type PlannedSegment = (usize, usize, Option<String>, Form, std::ops::Range<usize>);

/// What [`Masker::plan_text`] / [`Masker::plan_json`] found. Borrows the body and the masker.
pub struct Plan<'a> {
    body: &'a [u8],
    segments: Vec<PlannedSegment>,
    /// `(start, end, entry)` relative to the segment's text.
    hits: Vec<(usize, usize, usize)>,
    entries: Vec<PlanEntry<'a>>,
    /// Raw spans of the strings that skip rules kept as they are (sorted): the leak check ignores them. (Those
    /// holding placeholder-shaped text are segments, [`Form::SkippedJson`], and ignored the same way.)
    skipped: Vec<(usize, usize)>,
    /// Per entry: where else in the request it is masked, and so where the leak check looks for it.
    reach: Vec<Reach>,
    /// A JSON body (escape sequences in its strings are not text).
    json: bool,
    /// The propagation's needle index and the entries it was built on, for the leak check to reuse when it
    /// looks for the same originals.
    index: Option<(Detached, Vec<usize>)>,
}

/// How far a found value reaches beyond where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Everywhere, also inside a larger word (which is then masked whole): distinctive values of 8+ bytes.
    Anywhere,
    /// Where it stands as a word of its own: short values ("r-ab12", "prod-db").
    Word,
    /// Nowhere else: a plain-word name (`--username admin`) would otherwise mask the word all over the text.
    None,
}

impl Reach {
    /// Whether an occurrence at `text[start..end]` is one this reach covers: propagation masks it, and the
    /// leak check fails on it.
    fn covers(self, text: &[u8], start: usize, end: usize) -> bool {
        match self {
            Reach::Anywhere => true,
            Reach::Word => {
                (start == 0 || !placeholder::is_word_byte(text[start - 1]))
                    && (end == text.len() || !placeholder::is_word_byte(text[end]))
            }
            Reach::None => false,
        }
    }
}

#[derive(Default)]
struct EntryTable<'a> {
    /// The first entry of each original, by its text (the entries hold each original once: a decoded one is
    /// copied once, not once more for a key).
    index: hashbrown::HashTable<usize>,
    hasher: foldhash::fast::RandomState,
    /// `(kind, first entry of the text)` → the entry of the same text under another kind.
    more: HashMap<(KindId, usize), usize>,
    entries: Vec<PlanEntry<'a>>,
    kind_ids: Vec<KindId>,
}

impl<'a> EntryTable<'a> {
    /// Room for `n` more entries.
    fn reserve(&mut self, n: usize) {
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.index
            .reserve(n, |&i| hasher.hash_one(entries[i].original.as_bytes()));
        self.entries.reserve(n);
        self.kind_ids.reserve(n);
    }

    /// The entry of `text[start..end]` under `kind`, added when new (borrowing from the body when `text` is its
    /// own bytes, `in_body`).
    fn add(
        &mut self,
        detector: &'a Detector,
        kind: KindId,
        in_body: Option<&'a str>,
        text: &str,
        start: usize,
        end: usize,
    ) -> usize {
        let original = &text[start..end];
        let hash = self.hasher.hash_one(original.as_bytes());
        let next = self.entries.len();
        let (entries, hasher) = (&self.entries, &self.hasher);
        match self.index.find(hash, |&i| entries[i].original == original) {
            Some(&first) if self.kind_ids[first] == kind => return first,
            Some(&first) => match self.more.entry((kind, first)) {
                std::collections::hash_map::Entry::Occupied(e) => return *e.get(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(next);
                }
            },
            None => {
                self.index
                    .insert_unique(hash, next, |&i| hasher.hash_one(entries[i].original.as_bytes()));
            }
        }
        let k = detector.kind(kind);
        self.entries.push(PlanEntry {
            kind: &k.name,
            prefix: &k.prefix,
            original: match in_body {
                Some(t) => Cow::Borrowed(&t[start..end]),
                None => Cow::Owned(original.to_string()),
            },
        });
        self.kind_ids.push(kind);
        next
    }
}

/// The masked body and what it takes to unmask the answer.
#[derive(Debug, Clone)]
pub struct Masked {
    pub body: Vec<u8>,
    /// The placeholders inserted into this request: the only ones its response may resolve.
    pub map: RequestMap,
    /// Values masked per kind name (occurrences, not distinct values).
    pub counts: Vec<(String, u64)>,
}

impl Masker {
    pub fn new(config: &MaskerConfig) -> Result<Masker, ConfigError> {
        let detector = Detector::new(&DetectorConfig {
            disabled_kinds: config.disabled_kinds.clone(),
            custom_patterns: config.custom_patterns.clone(),
            allowlist: config.allowlist.clone(),
            keep_aws_managed: config.keep_aws_managed,
        })?;
        let skip =
            SkipRules::parse(config.skip_paths.as_deref().unwrap_or_default()).map_err(|message| ConfigError {
                key: "skip_paths".into(),
                message,
            })?;
        Ok(Masker { detector, skip })
    }

    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    fn reach(&self, kind: KindId, original: &str) -> Reach {
        let plain_name =
            self.detector.kind(kind).customer_named() && !crate::detect::looks_like_id(original.as_bytes());
        if plain_name {
            Reach::None
        } else if original.len() >= 8 {
            Reach::Anywhere
        } else {
            Reach::Word
        }
    }

    /// Plans the masking of a text body.
    pub fn plan_text<'a>(&'a self, text: &'a str) -> Plan<'a> {
        self.plan(text.as_bytes(), &TextBody(text), &[0])
    }

    /// Plans the masking of a JSON body: every string value and key, except the skipped ones.
    pub fn plan_json<'a>(&'a self, body: &'a [u8]) -> Result<Plan<'a>, MaskError> {
        self.plan_json_with(body, true)
    }

    /// [`Masker::plan_json`] searching every string on its own, repeated or not: the fuzzer's reference.
    #[doc(hidden)]
    pub fn plan_json_each<'a>(&'a self, body: &'a [u8]) -> Result<Plan<'a>, MaskError> {
        self.plan_json_with(body, false)
    }

    fn plan_json_with<'a>(&'a self, body: &'a [u8], share: bool) -> Result<Plan<'a>, MaskError> {
        let strings = json::scan(body, &self.skip).map_err(MaskError::InvalidJson)?;
        let mut list = Vec::with_capacity(strings.len());
        let mut skipped = Vec::new();
        let mut literals = Vec::new();
        // Short strings repeat by the thousand in AWS API output (every key, `running`, `m5.large`, the account
        // id of every instance): each is searched once. A string's class is the first segment with its text and
        // the classes of its key and parent key (keys come before their values), or none.
        const NONE: u32 = u32::MAX;
        let mut same_as = Vec::with_capacity(strings.len());
        let mut class = vec![NONE; strings.len()];
        // `(hash, first segment, key class, parent class)`; the hash of the text, mixed with the classes.
        let mut seen: hashbrown::HashTable<(u64, u32, u32, u32)> = hashbrown::HashTable::new();
        let hasher = foldhash::fast::RandomState::default();
        for (i, s) in strings.iter().enumerate() {
            // (No key is `NONE - 1`; a key without a class, a long one, makes its values unique.)
            let key_class = |k: Option<usize>| k.map_or(NONE - 1, |k| class[k]);
            let (key, parent) = (key_class(s.key), key_class(s.parent_key));
            let next = list.len() as u32;
            if share && !s.skip && s.text.len() <= REPEATED && key != NONE && parent != NONE {
                let hash = (hasher.hash_one(s.text.as_bytes()) ^ (key as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
                    .wrapping_add((parent as u64).wrapping_mul(0xc2b2_ae3d_27d4_eb4f))
                    .rotate_left(26);
                let same = |&(h, first, k, p): &(u64, u32, u32, u32)| {
                    h == hash && k == key && p == parent && strings.text(list[first as usize] as usize) == s.text
                };
                let first = match seen.find(hash, same) {
                    Some(&(_, first, _, _)) => first,
                    None => {
                        seen.insert_unique(hash, (hash, next, key, parent), |e| e.0);
                        next
                    }
                };
                class[i] = first;
                same_as.push(first);
            } else if !s.skip {
                same_as.push(next);
            }
            if s.skip {
                literals.clear();
                self.detector.literals(s.text.as_bytes(), &mut literals);
                if literals.is_empty() {
                    skipped.push((s.raw_start, s.raw_end));
                    continue;
                }
                same_as.push(next);
            }
            list.push(i as u32);
        }
        drop(seen);
        drop(class);
        let mut plan = self.plan(
            body,
            &JsonBody {
                strings: &strings,
                list,
            },
            &same_as,
        );
        plan.skipped = skipped;
        plan.json = true;
        Ok(plan)
    }

    /// `same_as`: per segment, the first segment of the same text and key context (itself when it is the first):
    /// what is found in one is found in the other, and so is what propagation adds.
    fn plan<'a>(&'a self, body: &'a [u8], segs: &impl Segments<'a>, same_as: &[u32]) -> Plan<'a> {
        debug_assert_eq!(same_as.len(), segs.len());
        let mut hits = Vec::new();
        let mut table = EntryTable::default();
        // The values found in every segment, one list: segment `si` has `found_all[per_seg[si]]` (a segment of
        // the same class shares its range), and `entry_of` holds their entries (`u32::MAX` when propagation
        // changed the segment's list, and they are looked up again).
        let mut found_all: Vec<Finding> = Vec::new();
        let mut entry_of: Vec<u32> = Vec::new();
        let mut per_seg: Vec<Span> = Vec::with_capacity(segs.len());
        for (si, &same) in same_as.iter().enumerate() {
            let same = same as usize;
            if same != si {
                per_seg.push(per_seg[same]);
                continue;
            }
            let first = found_all.len();
            let text = segs.text(si);
            if segs.form(si) == Form::SkippedJson {
                self.detector.literals(text.as_bytes(), &mut found_all);
            } else {
                self.detector.find(text.as_bytes(), segs.ctx(si), &mut found_all);
            }
            // At most one new entry per finding: room for them at once, not rehash after rehash.
            let n = found_all.len() - first;
            table.reserve(n);
            let in_body = segs.in_body(si);
            for f in &found_all[first..] {
                entry_of.push(small(table.add(&self.detector, f.kind, in_body, text, f.start, f.end)));
            }
            per_seg.push(Span::of(first..found_all.len()));
        }
        // A value found once is masked everywhere in the request: the same account id without its keyword,
        // a bucket name repeated in another message. See `Reach` for which values and where.
        let mut reach: Vec<Reach> = table
            .entries
            .iter()
            .zip(&table.kind_ids)
            .map(|(e, &k)| self.reach(k, &e.original))
            .collect();
        let spread: Vec<usize> = (0..table.entries.len()).filter(|&i| reach[i] != Reach::None).collect();
        let mut kept = None;
        if !spread.is_empty() {
            // The matches an Aho-Corasick automaton would report with `MatchKind::LeftmostLongest`, found by a
            // gram index (see `needles`), of the occurrences within reach: one that is not masked (a short value
            // inside a larger word, `a-b` in `data-bucket`) must not hide another it overlaps (`bucket`).
            let index = Needles::new(spread.iter().map(|&i| table.entries[i].original.as_bytes()).collect());
            // A segment shorter than every value holds none (most strings of AWS API output are).
            let shortest = spread
                .iter()
                .map(|&i| table.entries[i].original.len())
                .min()
                .unwrap_or(0);
            let mut matches = Vec::new();
            let mut found: Vec<(usize, usize)> = Vec::new();
            let mut extra = Vec::new();
            for (si, &same) in same_as.iter().enumerate() {
                let same = same as usize;
                if same != si {
                    per_seg[si] = per_seg[same];
                    continue;
                }
                let seg_text = segs.text(si);
                if segs.form(si) == Form::SkippedJson || seg_text.len() < shortest {
                    continue; // (a skipped value: only its placeholder-shaped text is masked)
                }
                let fs = &found_all[per_seg[si].range()];
                // A string that is a value found, whole (an id in AWS API output), holds no other.
                if let [f] = fs {
                    if f.start == 0 && f.end == seg_text.len() {
                        continue;
                    }
                }
                let text = seg_text.as_bytes();
                extra.clear();
                // The values found here by start, to tell in one sweep whether a match lies inside one: the
                // matches come by start too.
                found.clear();
                found.extend(fs.iter().map(|f| (f.start, f.end)));
                found.sort_unstable();
                let (mut next_found, mut reach_end) = (0, 0);
                index.leftmost_longest_where_into(text, &mut matches, |m| {
                    reach[spread[m.needle]].covers(text, m.start, m.end)
                });
                for m in &matches {
                    let entry = spread[m.needle];
                    // Part of a value found here: replaced with it. `reach_end` is the furthest end of the
                    // values that start at or before this match.
                    while next_found < found.len() && found[next_found].0 <= m.start {
                        reach_end = reach_end.max(found[next_found].1);
                        next_found += 1;
                    }
                    if next_found > 0 && m.end <= reach_end {
                        continue;
                    }
                    let (mut s, mut e) = (m.start, m.end);
                    // The whole word, and every value found that it overlaps (`gluejob=b=`, where the value
                    // is `b=`): what stuck out of the replaced span would still hold the original.
                    loop {
                        while s > 0 && placeholder::is_word_byte(text[s - 1]) {
                            s -= 1;
                        }
                        while e < text.len() && placeholder::is_word_byte(text[e]) {
                            e += 1;
                        }
                        let before = (s, e);
                        for f in fs {
                            if f.start < e && s < f.end {
                                (s, e) = (s.min(f.start), e.max(f.end));
                            }
                        }
                        if (s, e) == before {
                            break;
                        }
                    }
                    if seg_text.is_char_boundary(s) && seg_text.is_char_boundary(e) {
                        extra.push(Finding {
                            start: s,
                            end: e,
                            kind: table.kind_ids[entry],
                        });
                    }
                }
                if !extra.is_empty() {
                    extra.extend_from_slice(fs);
                    // A span grown over values found comes first, and they are dropped. Two grown spans can
                    // overlap (the word around one match reaches into the next match): they are joined, since
                    // dropping one would leave the rest of its match, maybe a whole original, in the text.
                    extra.sort_by_key(|f| (f.start, std::cmp::Reverse(f.end)));
                    extra.dedup_by(|f, kept| {
                        let overlaps = f.start < kept.end;
                        if overlaps {
                            kept.end = kept.end.max(f.end);
                        }
                        overlaps
                    });
                    // The segment's new list, at the end, its entries to be looked up.
                    let start = found_all.len();
                    found_all.extend_from_slice(&extra);
                    entry_of.resize(found_all.len(), u32::MAX);
                    per_seg[si] = Span::of(start..found_all.len());
                }
            }
            kept = Some((index.detach(), spread));
        }
        // Exact room (a segment of a shared class repeats its findings: there are more hits than findings).
        hits.reserve_exact(per_seg.iter().map(|r| r.range().len()).sum());
        let mut segments = Vec::with_capacity(per_seg.iter().filter(|r| !r.range().is_empty()).count());
        for (si, span) in per_seg.into_iter().enumerate() {
            let range = span.range();
            if range.is_empty() {
                continue;
            }
            let first = hits.len();
            let (text, in_body) = (segs.text(si), segs.in_body(si));
            for (f, &e) in found_all[range.clone()].iter().zip(&entry_of[range]) {
                let e = match e {
                    u32::MAX => table.add(&self.detector, f.kind, in_body, text, f.start, f.end),
                    e => e as usize,
                };
                hits.push((f.start, f.end, e));
            }
            let (raw_start, raw_end) = segs.raw(si);
            // The decoded text of a JSON string with escapes, to write it back.
            let owned = in_body.is_none().then(|| text.to_string());
            segments.push((raw_start, raw_end, owned, segs.form(si), first..hits.len()));
        }
        // The reach of the entries propagation added (those before were decided above).
        let known = reach.len();
        reach.extend(
            table.entries[known..]
                .iter()
                .zip(&table.kind_ids[known..])
                .map(|(e, &k)| self.reach(k, &e.original)),
        );
        Plan {
            body,
            segments,
            hits,
            entries: table.entries,
            reach,
            skipped: Vec::new(),
            json: false,
            index: kept,
        }
    }
}

impl<'a> Plan<'a> {
    /// The distinct values to assign placeholders to, in a stable order. Pass them to the vault in one call.
    pub fn entries(&self) -> &[PlanEntry<'a>] {
        &self.entries
    }

    /// True when nothing is to be masked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Rewrites the body with `placeholders` (one per entry, in order) and checks the result.
    pub fn finish(self, placeholders: &[String]) -> Result<Masked, MaskError> {
        let mut body = Vec::with_capacity(self.body.len() + self.body.len() / 8);
        let mut map = RequestMap::new();
        let counts = self.finish_into(placeholders, &mut body, Some(&mut map))?;
        Ok(Masked { body, map, counts })
    }

    /// [`Plan::finish`] into a buffer the caller keeps (`out` is cleared first; on error it is left empty): the
    /// placeholders inserted go into `map` when one is given. Returns the values masked per kind name.
    pub fn finish_into(
        self,
        placeholders: &[String],
        out: &mut Vec<u8>,
        map: Option<&mut RequestMap>,
    ) -> Result<Vec<(String, u64)>, MaskError> {
        out.clear();
        let r = self.rewrite(placeholders, out, map);
        if r.is_err() {
            out.clear();
        }
        r
    }

    fn rewrite(
        self,
        placeholders: &[String],
        out: &mut Vec<u8>,
        map: Option<&mut RequestMap>,
    ) -> Result<Vec<(String, u64)>, MaskError> {
        if placeholders.len() != self.entries.len() {
            return Err(MaskError::BadPlaceholders);
        }
        for (p, e) in placeholders.iter().zip(&self.entries) {
            if !placeholder::is_placeholder(p)
                || !p.starts_with(e.prefix)
                || p.as_bytes().get(e.prefix.len()) != Some(&b'_')
            {
                return Err(MaskError::BadPlaceholders);
            }
        }
        out.reserve(self.body.len() + self.body.len() / 8);
        let mut counts = vec![0u64; self.entries.len()];
        let mut last = 0;
        let mut skipped_out = Vec::with_capacity(self.skipped.len());
        // Output spans of the placeholders written, in order: an original that is itself placeholder-shaped (a
        // literal typed by the user) may equal, or be part of, a placeholder given to another value, or an
        // original may run into one (`=A` in `=AWS_…`); that is no leak.
        let mut inserted = Vec::with_capacity(self.hits.len());
        let mut sk = self.skipped.iter().peekable();
        for (raw_start, raw_end, owned, form, hits) in &self.segments {
            let is_json = *form != Form::Text;
            // Skipped spans in the gap being copied keep their size: shift them by the growth so far.
            let delta = out.len() as isize - last as isize;
            while let Some(&&(a, b)) = sk.peek() {
                if a >= *raw_start {
                    break;
                }
                skipped_out.push(((a as isize + delta) as usize, (b as isize + delta) as usize));
                sk.next();
            }
            out.extend_from_slice(&self.body[last..*raw_start]);
            let text: &[u8] = match owned {
                Some(t) => t.as_bytes(),
                // A JSON string without escapes: its raw bytes (checked to be UTF-8 when planned; written as bytes).
                None if is_json => &self.body[raw_start + 1..raw_end - 1],
                // A text body came as a `&str`.
                None => &self.body[*raw_start..*raw_end],
            };
            // JSON escaping is per byte and placeholders need none: escape the text between them.
            let write = |out: &mut Vec<u8>, t: &[u8]| {
                if is_json {
                    json::escape_bytes_into(t, out);
                } else {
                    out.extend_from_slice(t);
                }
            };
            let seg_out = out.len();
            if is_json {
                out.push(b'"');
            }
            let mut at = 0;
            for &(s, e, entry) in &self.hits[hits.clone()] {
                write(out, &text[at..s]);
                let p = out.len();
                out.extend_from_slice(placeholders[entry].as_bytes());
                inserted.push((p, out.len()));
                counts[entry] += 1;
                at = e;
            }
            write(out, &text[at..]);
            if is_json {
                out.push(b'"');
            }
            if *form == Form::SkippedJson {
                skipped_out.push((seg_out, out.len()));
            }
            last = *raw_end;
        }
        let delta = out.len() as isize - last as isize;
        skipped_out.extend(sk.map(|&(a, b)| ((a as isize + delta) as usize, (b as isize + delta) as usize)));
        out.extend_from_slice(&self.body[last..]);

        leak_check(
            out,
            &self.entries,
            &self.reach,
            &skipped_out,
            &inserted,
            self.json,
            self.index,
        )?;
        let mut by_kind: Vec<(String, u64)> = Vec::new();
        for (e, n) in self.entries.iter().zip(counts) {
            match by_kind.iter_mut().find(|(k, _)| *k == e.kind) {
                Some((_, c)) => *c += n,
                None => by_kind.push((e.kind.to_string(), n)),
            }
        }
        if let Some(map) = map {
            let bytes = (placeholders.iter().map(String::len))
                .chain(self.entries.iter().map(|e| e.original.len()))
                .sum();
            map.reserve(self.entries.len(), bytes);
            for (p, e) in placeholders.iter().zip(self.entries) {
                map.insert(p, &e.original);
            }
        }
        Ok(by_kind)
    }
}

/// Fails when an original (raw, or as it would be written inside a JSON string) is still in `out`: anywhere for
/// distinctive values, as a word of its own for short ones (see [`Reach`]); not in the `skipped` spans (values
/// that skip rules pass unchanged, such as `model` or base64 payloads). A match that overlaps one of the
/// `inserted` spans (the placeholders written) is made of the placeholder, not of the original: a literal
/// `AWS_EC2_001` typed by the user is an original, and may also be the placeholder given to an instance id. In a
/// JSON body (`json`), a match that starts inside an escape sequence (`00e` in `\u00e5`, `nab` in `\nab`) is not
/// the original either: the string does not say that. Both lists are sorted, their spans do not overlap.
fn leak_check(
    out: &[u8],
    entries: &[PlanEntry],
    reach: &[Reach],
    skipped: &[(usize, usize)],
    inserted: &[(usize, usize)],
    json: bool,
    kept: Option<(Detached, Vec<usize>)>,
) -> Result<(), MaskError> {
    if entries.is_empty() {
        return Ok(());
    }
    // The originals, then the JSON-escaped forms of those that differ.
    let mut escaped: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut owner: Vec<usize> = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        if reach[i] == Reach::None {
            continue;
        }
        owner.push(i);
        // Escaping changes the text exactly when it has a byte that does not stand for itself.
        if json::plain_run(e.original.as_bytes()) < e.original.len() {
            let mut esc = Vec::new();
            json::escape_into(&e.original, &mut esc);
            escaped.push((i, esc));
        }
    }
    if owner.is_empty() {
        return Ok(());
    }
    // The propagation's index, when it was built on these very originals (entries never change once added, so
    // the same entry numbers are the same bytes) and no escaped form is added.
    let reuse = match kept {
        Some((index, built_on)) if escaped.is_empty() && built_on == owner => Some(index),
        _ => None,
    };
    let mut needles: Vec<&[u8]> = owner.iter().map(|&i| entries[i].original.as_bytes()).collect();
    for (i, esc) in &escaped {
        needles.push(esc);
        owner.push(*i);
    }
    // Every occurrence, overlapping, as `find_overlapping_iter` of an Aho-Corasick automaton reports them; the
    // leak named is the first one it would report (by end, then the longest, then the first needle).
    let index = match reuse {
        Some(kept) => kept.attach(needles),
        None => Needles::new(needles),
    };
    let mut first: Option<(usize, std::cmp::Reverse<usize>, usize)> = None;
    index.occurrences(out, |m| {
        if !reach[owner[m.needle]].covers(out, m.start, m.end) {
            return true;
        }
        let k = skipped.partition_point(|&(a, _)| a <= m.start);
        let inside_skipped = k > 0 && m.end <= skipped[k - 1].1;
        let k = inserted.partition_point(|&(_, b)| b <= m.start);
        let placeholder = k < inserted.len() && inserted[k].0 < m.end;
        let not_text = placeholder || (json && in_escape(out, m.start));
        if !inside_skipped && !not_text {
            let key = (m.end, std::cmp::Reverse(m.end - m.start), m.needle);
            if first.is_none_or(|f| key < f) {
                first = Some(key);
            }
        }
        true
    });
    match first {
        Some((_, _, needle)) => Err(MaskError::Leak {
            kind: entries[owner[needle]].kind.to_string(),
        }),
        None => Ok(()),
    }
}

/// True when `b[pos]` is part of a JSON escape sequence and does not stand for itself: the letter of `\n`,
/// `\t`, `\r`, `\b`, `\f`, or the `u` and hex digits of `\uXXXX` (`\/`, `\"` and `\\` stand for their letter).
fn in_escape(b: &[u8], pos: usize) -> bool {
    // The backslash at `i` starts an escape when an even number of backslashes precede it.
    let opens = |i: usize| b[..i].iter().rev().take_while(|&&c| c == b'\\').count() % 2 == 0;
    (1..=5).any(|k| {
        pos >= k
            && b[pos - k] == b'\\'
            && opens(pos - k)
            && if k == 1 {
                matches!(b[pos], b'n' | b't' | b'r' | b'b' | b'f' | b'u')
            } else {
                b[pos - k + 1] == b'u' && b[pos - k + 2..=pos].iter().all(u8::is_ascii_hexdigit)
            }
    })
}
