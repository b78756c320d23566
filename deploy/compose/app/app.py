"""The example app: asks "the providers" about AWS resources with the official SDKs, default base URLs.

In the compose topology its connections to api.anthropic.com / api.openai.com are redirected by iptables to the
sidecar, which terminates TLS with a certificate from the local CA (trusted through SSL_CERT_FILE, written by
`maskgate ca env`) and hands the request to the gateway. The provider stand-in echoes what it received, so the
answer shows what left the gateway once it is unmasked again: the app must get its identifiers back, and the
gateway's access log shows they were masked (`"masked":{...}`).
"""

import sys

import anthropic
import openai

IDS = ["i-0123456789abcdef0", "vpc-0a1b2c3d4e5f67890", "arn:aws:iam::123456789012:role/DeployRole"]
QUESTION = f"Why can {IDS[0]} in {IDS[1]} not assume {IDS[2]}?"


def check(what: str, text: str) -> bool:
    ok = all(i in text for i in IDS) and "AWS_EC2_" not in text
    print(f"{'OK  ' if ok else 'FAIL'} {what}: {text}", flush=True)
    return ok


def main() -> int:
    # The app's own key: the gateway replaces it with the route's credential.
    claude = anthropic.Anthropic(api_key="app-own-key", max_retries=5)
    gpt = openai.OpenAI(api_key="app-own-key", max_retries=5)
    results = []

    msg = claude.messages.create(
        model="claude-sonnet-4-5", max_tokens=200, messages=[{"role": "user", "content": QUESTION}]
    )
    results.append(check("anthropic", "".join(b.text for b in msg.content if b.type == "text")))

    with claude.messages.stream(
        model="claude-sonnet-4-5", max_tokens=200, messages=[{"role": "user", "content": QUESTION}]
    ) as stream:
        results.append(check("anthropic stream", "".join(stream.text_stream)))

    chat = gpt.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": QUESTION}])
    results.append(check("openai", chat.choices[0].message.content or ""))

    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
