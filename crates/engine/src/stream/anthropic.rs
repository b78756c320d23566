//! Anthropic Messages SSE.
//!
//! `content_block_delta` events carry `text_delta.text`, `input_json_delta.partial_json` (a fragment of the tool
//! input's JSON text: restored values are JSON-escaped inside it) and `thinking_delta.thinking`; each content
//! block (by `index`) gets one text stream. `signature_delta` passes untouched. Held text goes out as one more
//! delta event for the block before the `signature_delta` or `content_block_stop` of that block (or before
//! `message_delta`, `message_stop`, `error`, or the end of the stream). Everything else is unmasked whole.

use super::rawjson::{object_with, Val};
use super::{json_object, push_str_lit, single_edit, whole, Block, Ctx, Framing};
use crate::resolve::Resolver;
use crate::unmask::Mode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    InputJson,
    Thinking,
}

impl Kind {
    fn from_type(t: &str) -> Option<Kind> {
        match t {
            "text_delta" => Some(Kind::Text),
            "input_json_delta" => Some(Kind::InputJson),
            "thinking_delta" => Some(Kind::Thinking),
            _ => None,
        }
    }
    fn delta_type(self) -> &'static str {
        match self {
            Kind::Text => "text_delta",
            Kind::InputJson => "input_json_delta",
            Kind::Thinking => "thinking_delta",
        }
    }
    fn field(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::InputJson => "partial_json",
            Kind::Thinking => "thinking",
        }
    }
    fn mode(self) -> Mode {
        match self {
            Kind::InputJson => Mode::Json,
            Kind::Text | Kind::Thinking => Mode::Text,
        }
    }
}

#[derive(Debug, Clone)]
struct ContentBlock {
    index: u64,
    kind: Kind,
    block: Block,
}

impl ContentBlock {
    fn flush<R: Resolver + ?Sized>(&mut self, cx: &mut Ctx<'_, R>, fr: &mut Framing, out: &mut Vec<u8>) {
        let (index, kind) = (self.index, self.kind);
        self.block.flush(cx, fr, out, |tpl, text, data| {
            let mut delta = String::new();
            delta.push_str("{\"type\":\"");
            delta.push_str(kind.delta_type());
            delta.push_str("\",\"");
            delta.push_str(kind.field());
            delta.push_str("\":");
            push_str_lit(&mut delta, text);
            delta.push('}');
            match tpl {
                Some(tpl) => object_with(tpl, &[("delta", Some(&delta))], data),
                None => {
                    data.push_str("{\"type\":\"content_block_delta\",\"index\":");
                    data.push_str(&index.to_string());
                    data.push_str(",\"delta\":");
                    data.push_str(&delta);
                    data.push('}');
                }
            }
        });
    }
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Anthropic {
    blocks: Vec<ContentBlock>,
    scratch: String,
}

impl Anthropic {
    pub fn each_block(&mut self, mut f: impl FnMut(&mut Block)) {
        self.blocks.iter_mut().for_each(|b| f(&mut b.block));
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
        let [ty, index, delta] = root.pick(["type", "index", "delta"]);
        let Some(ty) = ty.and_then(|t| t.str_raw()) else {
            return whole(cx, data, new);
        };
        let index = index.and_then(|v| v.as_u64());
        match (ty, index) {
            ("content_block_delta", Some(index)) => self.delta(cx, fr, delta, index, event, data, new, out),
            ("content_block_stop" | "content_block_start", Some(index)) => {
                self.flush(cx, fr, index, out);
                whole(cx, data, new)
            }
            ("message_delta" | "message_stop" | "error", _) => {
                self.flush_all(cx, fr, out);
                whole(cx, data, new)
            }
            _ => whole(cx, data, new),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn delta<R: Resolver + ?Sized>(
        &mut self,
        cx: &mut Ctx<'_, R>,
        fr: &mut Framing,
        delta: Option<Val<'_>>,
        index: u64,
        event: &[u8],
        data: &str,
        new: &mut String,
        out: &mut Vec<u8>,
    ) -> bool {
        let Some(delta) = delta.filter(Val::is_obj) else {
            return whole(cx, data, new);
        };
        let [dtype, text, partial_json, thinking] = delta.pick(["type", "text", "partial_json", "thinking"]);
        let dtype = dtype.and_then(|t| t.str_raw());
        if dtype == Some("signature_delta") {
            // The signature closes the thinking it signs; it passes untouched.
            self.flush(cx, fr, index, out);
            return false;
        }
        let Some(kind) = dtype.and_then(Kind::from_type) else {
            return whole(cx, data, new);
        };
        let sv = match kind {
            Kind::Text => text,
            Kind::InputJson => partial_json,
            Kind::Thinking => thinking,
        };
        let Some(sv) = sv.filter(Val::is_str) else {
            return whole(cx, data, new);
        };
        let Some(text) = sv.str() else {
            return whole(cx, data, new);
        };
        let pos = match self.blocks.iter().position(|b| b.index == index) {
            Some(p) => {
                if self.blocks[p].kind != kind {
                    self.blocks[p].flush(cx, fr, out);
                    self.blocks[p].kind = kind;
                    self.blocks[p].block = Block::new(kind.mode());
                }
                p
            }
            None => {
                self.blocks.push(ContentBlock {
                    index,
                    kind,
                    block: Block::new(kind.mode()),
                });
                self.blocks.len() - 1
            }
        };
        let mut emitted = std::mem::take(&mut self.scratch);
        emitted.clear();
        self.blocks[pos].block.push(cx, &text, event, data, &mut emitted);
        let changed = single_edit(cx, data, sv.start, &text, &emitted, new);
        self.scratch = emitted;
        changed
    }

    fn flush<R: Resolver + ?Sized>(&mut self, cx: &mut Ctx<'_, R>, fr: &mut Framing, index: u64, out: &mut Vec<u8>) {
        if let Some(p) = self.blocks.iter().position(|b| b.index == index) {
            let mut b = self.blocks.remove(p);
            b.flush(cx, fr, out);
        }
    }

    pub fn flush_all<R: Resolver + ?Sized>(&mut self, cx: &mut Ctx<'_, R>, fr: &mut Framing, out: &mut Vec<u8>) {
        self.blocks.sort_by_key(|b| b.index);
        for mut b in self.blocks.drain(..) {
            b.flush(cx, fr, out);
        }
    }
}
