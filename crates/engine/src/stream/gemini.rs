//! Gemini `streamGenerateContent`: each SSE event (`alt=sse`) or array element is a `GenerateContentResponse`.
//!
//! `candidates[i].content.parts[j].text` gets a text stream per (candidate, part index); a part that turns from
//! thought to answer text, or into a non-text part, ends the stream before it. A candidate's `finishReason`
//! ends its streams: held text of parts present in that chunk goes into them, held text of other parts goes out
//! as an extra chunk just before it. Everything else (`functionCall.args`, ...) is unmasked whole.

use super::rawjson::{object_with, Val};
use super::{json_object, push_str_lit, whole, Block, Ctx, Edits, Framing};
use crate::resolve::Resolver;
use crate::unmask::Mode;

#[derive(Debug, Clone)]
struct PartStream {
    cand: u64,
    part: u64,
    thought: bool,
    block: Block,
}

impl PartStream {
    fn new(cand: u64, part: u64, thought: bool) -> Self {
        PartStream {
            cand,
            part,
            thought,
            block: Block::new(Mode::Text),
        }
    }

    fn flush<R: Resolver + ?Sized>(&mut self, cx: &mut Ctx<'_, R>, fr: &mut Framing, out: &mut Vec<u8>) {
        let (cand, thought) = (self.cand, self.thought);
        self.block.flush(cx, fr, out, |tpl, text, data| {
            let mut c = String::new();
            c.push_str("[{\"content\":{\"parts\":[{\"text\":");
            push_str_lit(&mut c, text);
            if thought {
                c.push_str(",\"thought\":true");
            }
            c.push_str("}],\"role\":\"model\"},\"index\":");
            c.push_str(&cand.to_string());
            c.push_str("}]");
            match tpl {
                Some(tpl) => object_with(tpl, &[("candidates", Some(&c)), ("usageMetadata", None)], data),
                None => {
                    data.push_str("{\"candidates\":");
                    data.push_str(&c);
                    data.push('}');
                }
            }
        });
    }
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Gemini {
    streams: Vec<PartStream>,
}

impl Gemini {
    pub fn each_block(&mut self, mut f: impl FnMut(&mut Block)) {
        self.streams.iter_mut().for_each(|s| f(&mut s.block));
    }

    pub fn on_data<R: Resolver + ?Sized>(
        &mut self,
        cx: &mut Ctx<'_, R>,
        fr: &mut Framing,
        event: &[u8],
        data: &str,
        new: &mut String,
        out: &mut Vec<u8>,
    ) -> bool {
        let Some(root) = json_object(data) else {
            return whole(cx, data, new);
        };
        let Some(cands) = root.get("candidates").filter(Val::is_arr) else {
            return whole(cx, data, new);
        };
        let mut edits = Edits::default();
        let mut present: Vec<(u64, u64)> = Vec::new();
        let mut closing: Vec<u64> = Vec::new();
        for (cpos, c) in cands.items().enumerate() {
            let [index, finish_reason, content] = c.pick(["index", "finishReason", "content"]);
            let ci = index.and_then(|v| v.as_u64()).unwrap_or(cpos as u64);
            let fin = finish_reason.is_some_and(|v| !v.is_null());
            if fin {
                closing.push(ci);
            }
            let Some(parts) = content.and_then(|x| x.get("parts")).filter(Val::is_arr) else {
                continue;
            };
            for (pj, p) in parts.items().enumerate() {
                let pj = pj as u64;
                let pos = self.streams.iter().position(|s| s.cand == ci && s.part == pj);
                let [tv, thought] = p.pick(["text", "thought"]);
                let Some(tv) = tv.filter(Val::is_str) else {
                    // A non-text part ends the text before it.
                    if let Some(pos) = pos {
                        self.streams.remove(pos).flush(cx, fr, out);
                    }
                    continue;
                };
                let Some(text) = tv.str() else {
                    continue;
                };
                let thought = thought.and_then(|v| v.as_bool()) == Some(true);
                let s = match pos {
                    Some(pos) if self.streams[pos].thought == thought => &mut self.streams[pos],
                    Some(pos) => {
                        self.streams[pos].flush(cx, fr, out);
                        self.streams[pos] = PartStream::new(ci, pj, thought);
                        &mut self.streams[pos]
                    }
                    None => {
                        self.streams.push(PartStream::new(ci, pj, thought));
                        self.streams.last_mut().expect("just pushed")
                    }
                };
                let mut emitted = String::with_capacity(text.len());
                s.block.push(cx, &text, event, data, &mut emitted);
                if fin {
                    s.block.ts.finish(cx.r, cx.stats, &mut emitted);
                }
                present.push((ci, pj));
                edits.set(tv.start, &text, emitted);
            }
        }
        for ci in closing {
            let mut i = 0;
            while i < self.streams.len() {
                if self.streams[i].cand == ci {
                    let mut s = self.streams.remove(i);
                    if !present.contains(&(ci, s.part)) {
                        s.flush(cx, fr, out);
                    }
                } else {
                    i += 1;
                }
            }
        }
        edits.apply(cx, data, new)
    }

    pub fn flush_all<R: Resolver + ?Sized>(&mut self, cx: &mut Ctx<'_, R>, fr: &mut Framing, out: &mut Vec<u8>) {
        self.streams.sort_by_key(|s| (s.cand, s.part));
        for mut s in self.streams.drain(..) {
            s.flush(cx, fr, out);
        }
    }
}
