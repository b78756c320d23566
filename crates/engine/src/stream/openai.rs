//! OpenAI Chat Completions SSE and Responses SSE.
//!
//! Chat Completions: `choices[i].delta.content`, `.refusal` (and the `reasoning_content`/`reasoning` text some
//! compatible servers send), `.tool_calls[j].function.arguments` and the legacy `.function_call.arguments` (JSON
//! text fragments: restored values JSON-escaped) each get a text stream per choice. The chunk that carries a
//! choice's `finish_reason` ends that choice's streams: held text for a field it carries goes into it, held text
//! of other fields goes out as an extra chunk just before it. `data: [DONE]` and the end flush everything.
//!
//! Responses: every `<prefix>.delta` event with a string `delta` (`response.output_text.delta`,
//! `response.function_call_arguments.delta`, `response.reasoning_text.delta`, ...) gets a text stream per
//! (prefix, item, content/summary index), JSON-escaping for `*arguments*` prefixes. Held text goes out as an extra
//! delta event before the `*.done` event that closes it (matching item and index: the prefix's own `.done`,
//! `response.content_part.done`, `response.output_item.done`), or before `response.completed`/`failed`/
//! `incomplete`/`error` or the end. `*.done` and all other events are unmasked whole. `response.audio.delta`
//! (base64) passes untouched.

use super::rawjson::{object_with, Val};
use super::{json_object, push_str_lit, single_edit, whole, Block, Ctx, Edits, Framing};
use crate::resolve::Resolver;
use crate::unmask::Mode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChatField {
    /// A text field of the delta, by name.
    Text(&'static str),
    /// `tool_calls[index].function.arguments`.
    Tool(u64),
    /// `function_call.arguments` (deprecated API).
    FunctionCall,
}

impl ChatField {
    fn mode(self) -> Mode {
        match self {
            ChatField::Text(_) => Mode::Text,
            ChatField::Tool(_) | ChatField::FunctionCall => Mode::Json,
        }
    }

    /// The delta object carrying `text` in this field.
    fn delta_json(self, text: &str, out: &mut String) {
        match self {
            ChatField::Text(name) => {
                out.push_str("{\"");
                out.push_str(name);
                out.push_str("\":");
                push_str_lit(out, text);
                out.push('}');
            }
            ChatField::Tool(i) => {
                out.push_str("{\"tool_calls\":[{\"index\":");
                out.push_str(&i.to_string());
                out.push_str(",\"function\":{\"arguments\":");
                push_str_lit(out, text);
                out.push_str("}}]}");
            }
            ChatField::FunctionCall => {
                out.push_str("{\"function_call\":{\"arguments\":");
                push_str_lit(out, text);
                out.push_str("}}");
            }
        }
    }
}

fn text_field(name: &str) -> Option<&'static str> {
    Some(match name {
        "content" => "content",
        "refusal" => "refusal",
        "reasoning_content" => "reasoning_content",
        "reasoning" => "reasoning",
        _ => return None,
    })
}

#[derive(Debug, Clone)]
struct ChatStream {
    choice: u64,
    field: ChatField,
    block: Block,
}

impl ChatStream {
    fn flush<R: Resolver + ?Sized>(&mut self, cx: &mut Ctx<'_, R>, fr: &mut Framing, out: &mut Vec<u8>) {
        let (choice, field) = (self.choice, self.field);
        self.block.flush(cx, fr, out, |tpl, text, data| {
            let mut choices = String::new();
            choices.push_str("[{\"index\":");
            choices.push_str(&choice.to_string());
            choices.push_str(",\"delta\":");
            field.delta_json(text, &mut choices);
            choices.push_str(",\"finish_reason\":null}]");
            match tpl {
                Some(tpl) => object_with(
                    tpl,
                    &[("choices", Some(&choices)), ("usage", None), ("obfuscation", None)],
                    data,
                ),
                None => {
                    data.push_str("{\"object\":\"chat.completion.chunk\",\"choices\":");
                    data.push_str(&choices);
                    data.push('}');
                }
            }
        });
    }
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Chat {
    streams: Vec<ChatStream>,
}

impl Chat {
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
        if data.trim() == "[DONE]" {
            self.flush_all(cx, fr, out);
            return false;
        }
        let Some(root) = json_object(data) else {
            return whole(cx, data, new);
        };
        let Some(choices) = root.get("choices").filter(Val::is_arr) else {
            return whole(cx, data, new);
        };
        let mut edits = Edits::default();
        let mut present: Vec<(u64, ChatField)> = Vec::new();
        let mut closing: Vec<u64> = Vec::new();
        for (pos, ch) in choices.items().enumerate() {
            let [index, finish_reason, delta] = ch.pick(["index", "finish_reason", "delta"]);
            let ci = index.and_then(|v| v.as_u64()).unwrap_or(pos as u64);
            let fin = finish_reason.is_some_and(|v| !v.is_null());
            if fin {
                closing.push(ci);
            }
            let Some(delta) = delta.filter(Val::is_obj) else {
                continue;
            };
            for (k, v) in delta.fields() {
                let name = k.str_raw().unwrap_or("");
                if let Some(name) = text_field(name) {
                    if v.is_str() {
                        let f = ChatField::Text(name);
                        self.push(cx, ci, f, v, fin, event, data, &mut edits);
                        present.push((ci, f));
                    }
                } else if name == "tool_calls" {
                    for (tpos, tc) in v.items().enumerate() {
                        let ti = tc.get("index").and_then(|v| v.as_u64()).unwrap_or(tpos as u64);
                        if let Some(a) = tc.get("function").and_then(|f| f.get_str("arguments")) {
                            let f = ChatField::Tool(ti);
                            self.push(cx, ci, f, a, fin, event, data, &mut edits);
                            present.push((ci, f));
                        }
                    }
                } else if name == "function_call" {
                    if let Some(a) = v.get_str("arguments") {
                        let f = ChatField::FunctionCall;
                        self.push(cx, ci, f, a, fin, event, data, &mut edits);
                        present.push((ci, f));
                    }
                }
            }
        }
        for ci in closing {
            let mut i = 0;
            while i < self.streams.len() {
                if self.streams[i].choice == ci {
                    let mut s = self.streams.remove(i);
                    if !present.contains(&(ci, s.field)) {
                        s.flush(cx, fr, out);
                    }
                } else {
                    i += 1;
                }
            }
        }
        edits.apply(cx, data, new)
    }

    #[allow(clippy::too_many_arguments)]
    fn push<R: Resolver + ?Sized>(
        &mut self,
        cx: &mut Ctx<'_, R>,
        choice: u64,
        field: ChatField,
        v: Val<'_>,
        fin: bool,
        event: &[u8],
        data: &str,
        edits: &mut Edits,
    ) {
        let Some(text) = v.str() else {
            return;
        };
        let s = match self
            .streams
            .iter_mut()
            .position(|s| s.choice == choice && s.field == field)
        {
            Some(p) => &mut self.streams[p],
            None => {
                self.streams.push(ChatStream {
                    choice,
                    field,
                    block: Block::new(field.mode()),
                });
                self.streams.last_mut().expect("just pushed")
            }
        };
        let mut emitted = String::with_capacity(text.len());
        s.block.push(cx, &text, event, data, &mut emitted);
        if fin {
            s.block.ts.finish(cx.r, cx.stats, &mut emitted);
        }
        edits.set(v.start, &text, emitted);
    }

    pub fn flush_all<R: Resolver + ?Sized>(&mut self, cx: &mut Ctx<'_, R>, fr: &mut Framing, out: &mut Vec<u8>) {
        self.streams.sort_by_key(|s| s.choice);
        for mut s in self.streams.drain(..) {
            s.flush(cx, fr, out);
        }
    }
}

/// Which output item an event is about: its id and/or its output index.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    id: Option<String>,
    index: Option<u64>,
}

impl Item {
    fn of(item_id: Option<Val<'_>>, item: Option<Val<'_>>, output_index: Option<Val<'_>>) -> Item {
        let id = item_id
            .filter(Val::is_str)
            .or_else(|| item.and_then(|i| i.get_str("id")))
            .and_then(|v| v.str_raw())
            .map(str::to_owned);
        Item {
            id,
            index: output_index.and_then(|v| v.as_u64()),
        }
    }

    /// True when this is the item `id` / `index` of an event.
    fn is(&self, id: Option<&str>, index: Option<u64>) -> bool {
        self.id.as_deref() == id && self.index == index
    }

    fn matches(&self, other: &Item) -> bool {
        match (&self.id, &other.id) {
            (Some(a), Some(b)) => a == b,
            _ => matches!((self.index, other.index), (Some(a), Some(b)) if a == b),
        }
    }
}

/// The part of an item: `(0, content_index)` or `(1, summary_index)`.
fn sub_of(content_index: Option<Val<'_>>, summary_index: Option<Val<'_>>) -> Option<(u8, u64)> {
    if let Some(i) = content_index.and_then(|v| v.as_u64()) {
        return Some((0, i));
    }
    summary_index.and_then(|v| v.as_u64()).map(|i| (1, i))
}

#[derive(Debug, Clone)]
struct RespStream {
    prefix: String,
    item: Item,
    sub: Option<(u8, u64)>,
    block: Block,
}

impl RespStream {
    fn flush<R: Resolver + ?Sized>(&mut self, cx: &mut Ctx<'_, R>, fr: &mut Framing, out: &mut Vec<u8>) {
        let (prefix, item, sub) = (&self.prefix, &self.item, self.sub);
        self.block.flush(cx, fr, out, |tpl, text, data| {
            let mut delta = String::new();
            push_str_lit(&mut delta, text);
            match tpl {
                Some(tpl) => object_with(
                    tpl,
                    &[("delta", Some(&delta)), ("logprobs", Some("[]")), ("obfuscation", None)],
                    data,
                ),
                None => {
                    data.push_str("{\"type\":");
                    push_str_lit(data, &format!("{prefix}.delta"));
                    if let Some(id) = &item.id {
                        data.push_str(",\"item_id\":");
                        push_str_lit(data, id);
                    }
                    if let Some(i) = item.index {
                        data.push_str(&format!(",\"output_index\":{i}"));
                    }
                    match sub {
                        Some((0, i)) => data.push_str(&format!(",\"content_index\":{i}")),
                        Some((_, i)) => data.push_str(&format!(",\"summary_index\":{i}")),
                        None => {}
                    }
                    data.push_str(",\"delta\":");
                    data.push_str(&delta);
                    data.push('}');
                }
            }
        });
    }
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Responses {
    streams: Vec<RespStream>,
    scratch: String,
}

impl Responses {
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
        let [ty, delta, item_id, item, output_index, content_index, summary_index] = root.pick([
            "type",
            "delta",
            "item_id",
            "item",
            "output_index",
            "content_index",
            "summary_index",
        ]);
        let Some(ty) = ty.and_then(|t| t.str_raw()) else {
            return whole(cx, data, new);
        };
        let sub = sub_of(content_index, summary_index);
        if let Some(prefix) = ty.strip_suffix(".delta") {
            if prefix == "response.audio" {
                return false;
            }
            let Some(dv) = delta.filter(Val::is_str) else {
                return whole(cx, data, new);
            };
            let Some(text) = dv.str() else {
                return whole(cx, data, new);
            };
            let id = item_id.and_then(|v| v.str_raw());
            let index = output_index.and_then(|v| v.as_u64());
            let pos = self
                .streams
                .iter()
                .position(|s| s.prefix == prefix && s.sub == sub && s.item.is(id, index));
            let s = match pos {
                Some(p) => &mut self.streams[p],
                None => {
                    let mode = if prefix.contains("arguments") {
                        Mode::Json
                    } else {
                        Mode::Text
                    };
                    self.streams.push(RespStream {
                        prefix: prefix.to_owned(),
                        item: Item {
                            id: id.map(str::to_owned),
                            index,
                        },
                        sub,
                        block: Block::new(mode),
                    });
                    self.streams.last_mut().expect("just pushed")
                }
            };
            let mut emitted = std::mem::take(&mut self.scratch);
            emitted.clear();
            s.block.push(cx, &text, event, data, &mut emitted);
            let changed = single_edit(cx, data, dv.start, &text, &emitted, new);
            self.scratch = emitted;
            return changed;
        }
        if ty.ends_with(".done") {
            let item = Item::of(item_id, item, output_index);
            let mut i = 0;
            while i < self.streams.len() {
                let s = &self.streams[i];
                if s.item.matches(&item) && (sub.is_none() || s.sub == sub) {
                    let mut s = self.streams.remove(i);
                    s.flush(cx, fr, out);
                } else {
                    i += 1;
                }
            }
        } else if matches!(
            ty,
            "response.completed" | "response.failed" | "response.incomplete" | "error"
        ) {
            self.flush_all(cx, fr, out);
        }
        whole(cx, data, new)
    }

    pub fn flush_all<R: Resolver + ?Sized>(&mut self, cx: &mut Ctx<'_, R>, fr: &mut Framing, out: &mut Vec<u8>) {
        for mut s in self.streams.drain(..) {
            s.flush(cx, fr, out);
        }
    }
}
