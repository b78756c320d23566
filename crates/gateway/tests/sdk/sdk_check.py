"""Official SDKs against the maskgate gateway: base-URL mode (run by crates/gateway/tests/gateway/sdk.rs), or with
the SDKs' default base URLs through the sidecar (crates/maskgate/tests/sidecar_e2e.rs: GATEWAY unset).

Environment: GATEWAY (http://127.0.0.1:PORT; unset: the SDKs' default base URLs), SDK_TEXT (the user message), SDK_ORIGINALS (JSON list),
CLIENT_KEY (the app's own key, which the gateway must replace). Asserts that every original comes back in text and
tool calls, streamed and not; the Rust side asserts on what the provider received.
"""
import json
import os
import sys

import anthropic
import openai

GW = os.environ.get("GATEWAY")
TEXT = os.environ["SDK_TEXT"]
ORIGINALS = json.loads(os.environ["SDK_ORIGINALS"])
KEY = os.environ["CLIENT_KEY"]
checks = 0


def check(what, text):
    global checks
    missing = [o for o in ORIGINALS if o not in text]
    if missing or "AWS_EC2_" in text:
        print(f"FAIL {what}: missing {missing} in {text!r}", file=sys.stderr)
        sys.exit(1)
    checks += 1


# Small deltas so that placeholders are split across events.
HEADERS = {"x-mock-chunk": "3"}

a = anthropic.Anthropic(base_url=f"{GW}/anthropic" if GW else None, api_key=KEY, default_headers=HEADERS, max_retries=0)
tools = [{"name": "lookup", "description": "Look up", "input_schema": {"type": "object"}}]
msgs = [{"role": "user", "content": TEXT}]
m = a.messages.create(model="claude-test", max_tokens=100, messages=msgs, tools=tools)
check("anthropic text", m.content[0].text)
check("anthropic tool_use", m.content[1].input["target"])
with a.messages.stream(model="claude-test", max_tokens=100, messages=msgs, tools=tools) as s:
    streamed = "".join(s.text_stream)
    final = s.get_final_message()
check("anthropic streamed text", streamed)
check("anthropic streamed tool_use", final.content[1].input["target"])
raw = a.messages.create(model="claude-test", max_tokens=100, messages=msgs, stream=True)
parts = [e.delta.text for e in raw if e.type == "content_block_delta" and e.delta.type == "text_delta"]
check("anthropic raw stream", "".join(parts))

o = openai.OpenAI(base_url=f"{GW}/openai/v1" if GW else None, api_key=KEY, default_headers=HEADERS, max_retries=0)
otools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
c = o.chat.completions.create(model="gpt-test", messages=msgs, tools=otools)
check("openai chat", c.choices[0].message.content)
check("openai chat tool call", json.loads(c.choices[0].message.tool_calls[0].function.arguments)["target"])
text, args = "", ""
for chunk in o.chat.completions.create(model="gpt-test", messages=msgs, tools=otools, stream=True):
    if not chunk.choices:
        continue
    d = chunk.choices[0].delta
    text += d.content or ""
    for tc in d.tool_calls or []:
        args += tc.function.arguments or ""
check("openai chat streamed", text)
check("openai chat streamed tool call", json.loads(args)["target"])

rtools = [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]
r = o.responses.create(model="gpt-test", input=TEXT, tools=rtools)
check("openai responses", r.output_text)
check("openai responses function call", json.loads(r.output[1].arguments)["target"])
text, args, done = "", "", None
for ev in o.responses.create(model="gpt-test", input=TEXT, tools=rtools, stream=True):
    if ev.type == "response.output_text.delta":
        text += ev.delta
    elif ev.type == "response.function_call_arguments.delta":
        args += ev.delta
    elif ev.type == "response.completed":
        done = ev.response
check("openai responses streamed", text)
check("openai responses streamed arguments", json.loads(args)["target"])
check("openai responses completed", done.output_text)

print(f"SDK OK: {checks} checks, anthropic {anthropic.__version__}, openai {openai.__version__}")
