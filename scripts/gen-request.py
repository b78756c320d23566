#!/usr/bin/env python3
"""Wraps text into an Anthropic Messages request body, for `maskgate mask --json` and the JSON benchmarks.

usage: gen-mixed.py 1 | gen-request.py [--utf8] > request.json     (the text of stdin, in 16 KB messages)
       gen-mixed.py 1 | gen-request.py --per-line > request.json  (each line of stdin a text block of its own)
       gen-request.py --korean MEGABYTES [--utf8] > request.json  (Korean prose with an identifier every ~2 KB)
       gen-request.py --aws-output COUNT > request.json           (a tool_use input of COUNT described instances:
                                                                   AWS API output, many short strings)
       gen-request.py --aws-result COUNT > request.json           (the same output as a tool_result's text, as
                                                                   the AWS CLI prints it: one escaped string)

The body is written as Python's json.dumps writes it by default, with every non-ASCII character escaped as
`\\uXXXX` (what the Python SDKs send); --utf8 writes it unescaped. A tool result with a keyed instance id and
account id and a 64 KB base64 image (a skipped path) end the messages. Deterministic.
"""
import json
import random
import sys

random.seed(7)
args = sys.argv[1:]
utf8 = "--utf8" in args
korean = "--korean" in args
numbers = [a for a in args if not a.startswith("--")]

WORDS = ("인스턴스 서버 로그 오류 배포 요청 사용자 계정 버킷 네트워크 보안 그룹 설정 확인 실패 재시도 시간 초과 "
         "데이터베이스 연결 응답 지연").split()
IDS = [
    lambda: "i-%017x" % random.getrandbits(68),
    lambda: "arn:aws:iam::%012d:role/app-%d" % (random.randrange(10**12), random.randrange(100)),
    lambda: "10.%d.%d.%d" % (random.randrange(256), random.randrange(256), random.randrange(1, 255)),
]


def korean_text(size):
    out, n, since = [], 0, 0
    while n < size:
        line = " ".join(random.choice(WORDS) for _ in range(12))
        if since > 2000:
            line += " " + random.choice(IDS)()
            since = 0
        line += "\n"
        out.append(line)
        b = len(line.encode())
        n += b
        since += b
    return "".join(out)


if "--aws-output" in args or "--aws-result" in args:
    random.seed(3)
    instances = [{
        "InstanceId": "i-%017x" % random.getrandbits(68), "InstanceType": "m5.large",
        "State": {"Name": "running", "Code": 16},
        "PrivateIpAddress": "10.%d.%d.%d" % (random.randrange(256), random.randrange(256), random.randrange(1, 255)),
        "SubnetId": "subnet-%017x" % random.getrandbits(68), "VpcId": "vpc-%08x" % random.getrandbits(32),
        "OwnerId": "%012d" % random.randrange(10**12), "LaunchTime": "2024-06-15T10:30:45.000Z",
        "Tags": [{"Key": "Name", "Value": "web-%d" % k}, {"Key": "env", "Value": "prod"}],
    } for k in range(int(numbers[0]))]
    output = {"Reservations": [{"Instances": instances}]}
    body = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [
        {"role": "user", "content": "Summarise these instances."},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01", "name": "describe_instances",
                                           "input": output}]}]}
    if "--aws-result" in args:
        body["messages"][1]["content"][0]["input"] = {}
        body["messages"].append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01", "content": json.dumps(output, indent=4)}]})
    sys.stdout.write(json.dumps(body, ensure_ascii=not utf8))
    sys.exit(0)
if "--per-line" in args:
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": [
        {"type": "text", "text": line} for line in sys.stdin.read().split("\n") if line]}]}
    sys.stdout.write(json.dumps(body, ensure_ascii=not utf8))
    sys.exit(0)
if korean:
    total = int(float(numbers[0]) * 1_000_000)
    texts = [korean_text(16384) for _ in range(max(1, total // 16384))]
else:
    text = sys.stdin.read()
    texts = [text[i:i + 16384] for i in range(0, len(text), 16384)]
messages = [
    {"role": "user" if k % 2 == 0 else "assistant", "content": [{"type": "text", "text": t}]}
    for k, t in enumerate(texts)
]
messages.append({"role": "user", "content": [
    {"type": "tool_result", "tool_use_id": "toolu_01",
     "content": "{\"InstanceId\": \"i-0abc123def4567890\", \"OwnerId\": \"123456789012\"}"},
    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "QUJD" * 16384}},
    {"type": "text", "text": "What failed, and on which instance?"},
]})
body = {"model": "claude-sonnet-4-5", "max_tokens": 4096, "system": "You are an SRE assistant.",
        "messages": messages}
sys.stdout.write(json.dumps(body, ensure_ascii=not utf8))
