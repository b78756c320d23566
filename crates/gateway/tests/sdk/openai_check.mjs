// The official Node `openai` SDK with its default base URL (https://api.openai.com/v1), through the maskgate
// sidecar (run by crates/maskgate/tests/sidecar_e2e.rs with NODE_SDK_DIR naming the directory that
// scripts/setup-test-env.sh installs `openai` and `undici` into, .node-sdk/ by default).
//
// Environment: SDK_TEXT (the user message), SDK_ORIGINALS (JSON list), CLIENT_KEY (the app's own key), the CA through
// NODE_EXTRA_CA_CERTS (read by Node at start). PROXY_URL set: explicit-proxy mode through an undici ProxyAgent
// (Node's built-in fetch ignores HTTPS_PROXY before Node 24's NODE_USE_ENV_PROXY). Prints "NODE SDK OK".
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.env.NODE_SDK_DIR, "package.json"));
const OpenAI = require("openai").default ?? require("openai");

const TEXT = process.env.SDK_TEXT;
const ORIGINALS = JSON.parse(process.env.SDK_ORIGINALS);
let checks = 0;

function check(what, text) {
  const missing = ORIGINALS.filter((o) => !text.includes(o));
  if (missing.length || text.includes("AWS_EC2_")) {
    console.error(`FAIL ${what}: missing ${JSON.stringify(missing)} in ${JSON.stringify(text)}`);
    process.exit(1);
  }
  checks++;
}

const opts = { apiKey: process.env.CLIENT_KEY, defaultHeaders: { "x-mock-chunk": "3" }, maxRetries: 0 };
if (process.env.PROXY_URL) {
  const undici = require("undici");
  opts.fetch = undici.fetch;
  opts.fetchOptions = { dispatcher: new undici.ProxyAgent(process.env.PROXY_URL) };
}
const o = new OpenAI(opts);
const msgs = [{ role: "user", content: TEXT }];
const tools = [{ type: "function", function: { name: "lookup", parameters: { type: "object" } } }];

const c = await o.chat.completions.create({ model: "gpt-test", messages: msgs, tools });
check("chat", c.choices[0].message.content);
check("chat tool call", JSON.parse(c.choices[0].message.tool_calls[0].function.arguments).target);

let text = "";
let args = "";
const stream = await o.chat.completions.create({ model: "gpt-test", messages: msgs, tools, stream: true });
for await (const chunk of stream) {
  const d = chunk.choices?.[0]?.delta;
  if (!d) continue;
  text += d.content ?? "";
  for (const tc of d.tool_calls ?? []) args += tc.function?.arguments ?? "";
}
check("chat streamed", text);
check("chat streamed tool call", JSON.parse(args).target);

const r = await o.responses.create({ model: "gpt-test", input: TEXT });
check("responses", r.output_text);
let rtext = "";
for await (const ev of await o.responses.create({ model: "gpt-test", input: TEXT, stream: true })) {
  if (ev.type === "response.output_text.delta") rtext += ev.delta;
}
check("responses streamed", rtext);
console.log(`NODE SDK OK (${checks} checks)`);
