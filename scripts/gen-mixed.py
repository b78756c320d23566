#!/usr/bin/env python3
"""Writes N MB of mixed prose, log and code lines with about one AWS identifier per ~2 KB (deterministic).

usage: gen-mixed.py MEGABYTES [--real] [--dense] [--base64] [--one-line] [--json-logs] [--varied] > file

By default the lines come from the fifteen below. With --real they are runs of consecutive lines from files a
Debian machine has (Python's standard library, the Debian changelogs and copyright files under /usr/share/doc,
dpkg's and apt's logs): text no detector was tuned on, with its version strings, paths, hashes and dates.
Deterministic for the same set of installed packages.

Harder shapes, for the slow paths: --dense puts an identifier every ~128 bytes instead of ~2 KB; --base64 adds
an image line (`{"type":"image","data":"<base64 of 50 to 600 bytes>"}`) after every line; --one-line writes
spaces instead of line ends (one line of MEGABYTES); --json-logs writes structured log lines (one JSON object per
line, the usual fields) whose identifiers are fields of their own, a third of them `"accountId": "<12 digits>"`,
which starts a list for the scan (the shape that once made it quadratic); --varied writes lines made afresh
each time from parts (words, numbers, timestamps, hex, UUIDs): logs with request and trace ids (UUIDs and 32 hex
digits), JSON logs, access logs, systemd lines, code, git commits, pip hash lines and prose, as another
generator than this one might write them (loopback client addresses: public ones are identifiers).
"""
import base64
import glob
import json
import gzip
import random
import sys

random.seed(42)
PROSE = [
    "The quick review of the deployment pipeline showed that most of the latency came from cold starts.",
    "We should revisit the caching strategy before the next release; the hit rate dropped to 71 percent.",
    "Please summarise the incident report and list the follow-up actions with their owners and due dates.",
    "Kubernetes schedules the pods onto nodes, and the autoscaler adds capacity when requests queue up.",
    "이 문서는 배포 절차를 설명합니다. 모든 단계는 검토 후에 진행됩니다.",
    "The migration to version 3.11.4 finished on 2024-06-15 without data loss; rollback was not needed.",
]
LOG = [
    "2024-06-15T10:30:45.123Z INFO  [http-nio-8080-exec-7] c.e.api.OrderController - GET /api/orders/18273 200 34ms",
    "2024-06-15T10:30:46.001Z WARN  [scheduler-2] c.e.jobs.Cleanup - retrying batch 42 after timeout (attempt 3/5)",
    "Jun 15 10:30:47 web-3 nginx[1234]: 127.0.0.1 - - \"POST /v1/messages HTTP/1.1\" 200 5123 \"-\" \"curl/8.5.0\"",
    "2024-06-15 10:30:48,551 DEBUG urllib3.connectionpool Starting new HTTPS connection (1): example.com:443",
]
CODE = [
    "    let mut map: HashMap<String, Vec<u64>> = HashMap::with_capacity(1024);",
    "def handler(event, context):\n    return {\"statusCode\": 200, \"body\": json.dumps(event)}",
    "    for (i, item) in items.iter().enumerate() { total += item.price * item.qty; }",
    "const client = new S3Client({ region: process.env.AWS_REGION, maxAttempts: 3 });",
    "use std::collections::BTreeMap; // sha 3f786850e387550fdab836ed7e6dc881de23001b",
]
IDS = [
    lambda: "i-%017x" % random.getrandbits(68),
    lambda: "vpc-%08x" % random.getrandbits(32),
    lambda: "arn:aws:iam::%012d:role/app-%d" % (random.randrange(10**12), random.randrange(100)),
    lambda: "10.%d.%d.%d" % (random.randrange(256), random.randrange(256), random.randrange(1, 255)),
    lambda: "s3://bucket-%d-logs/key" % random.randrange(1000),
    lambda: "sg-%017x" % random.getrandbits(68),
]


WORDS = ("the a of to and in is for on with as by at from that this be are was it or an not which deploy service "
         "request user order cache latency queue worker retry timeout config cluster node pod region bucket table "
         "index stream event handler client server session token account billing invoice payment report metric "
         "alert").split()


def varied_line():
    """One line of --varied: a kind drawn at random, its parts drawn afresh."""
    r, w = random.randint, lambda: random.choice(WORDS)
    hexs = lambda n: "%0*x" % (n, random.getrandbits(4 * n))
    uuid = lambda: "%s-%s-%s-%s-%s" % (hexs(8), hexs(4), hexs(4), hexs(4), hexs(12))
    ts = lambda: "2024-%02d-%02dT%02d:%02d:%02d.%03dZ" % (r(1, 12), r(1, 28), r(0, 23), r(0, 59), r(0, 59), r(0, 999))

    def prose():
        s = " ".join(w() for _ in range(r(8, 25))).capitalize()
        return s + random.choice([".", ".", "?", ";", " (see section %d.%d)." % (r(1, 9), r(1, 9))])

    kinds = [
        prose,
        lambda: "%s %s [%s-%d] request_id=%s user_id=%d latency_ms=%d status=%d path=/api/v1/%ss/%d" % (
            ts(), random.choice(["INFO", "WARN", "DEBUG", "ERROR"]), w(), r(1, 16), uuid(), r(1, 10**6), r(1, 900),
            random.choice([200, 201, 404, 500]), w(), r(1, 99999)),
        lambda: '{"ts":"%s","level":"info","msg":"%s","trace_id":"%s","span_id":"%s","duration":%.4f,"client_ip":"127.0.0.1"}' % (
            ts(), prose(), hexs(32), hexs(16), random.random()),
        lambda: '127.0.0.1 - - [15/Jun/2024:10:%d:%d +0000] "GET /%s/%s?page=%d&sort=%s HTTP/1.1" %d %d "-" "Mozilla/5.0 (X11; Linux x86_64)"' % (
            r(10, 59), r(10, 59), w(), hexs(8), r(1, 50), w(), random.choice([200, 304, 404]), r(100, 90000)),
        lambda: "%s ERROR %s.%s.%sService - failed to process message %s after %d attempts: connection reset by peer (errno=104)" % (
            ts(), w(), w(), w().capitalize(), uuid(), r(1, 5)),
        lambda: "Jun %d %d:%d:%d host-%d systemd[%d]: Started %s-%s.service - %s" % (
            r(1, 28), r(10, 23), r(10, 59), r(10, 59), r(1, 40), r(1, 9999), w(), w(), prose()),
        lambda: "    %s_%s = self.%s.get('%s', %d)  # %s" % (w(), w(), w(), w(), r(0, 1000), prose()),
        lambda: "    let %s_%s: Vec<u%d> = %s.iter().map(|x| x * %d).collect();" % (w(), w(), random.choice([8, 16, 32, 64]), w(), r(2, 9)),
        lambda: "  const %s_%s = await fetch(`${BASE_URL}/%s/${id}`, { method: 'POST', headers: { 'Content-Type': 'application/json' } });" % (w(), w(), w()),
        lambda: "commit %s\nAuthor: Dev %s <dev%d@example.com>\nDate:   Mon Jun %d 10:%d:00 2024 +0200" % (hexs(40), w().capitalize(), r(1, 99), r(1, 28), r(10, 59)),
        lambda: "    assert %s.version == '%d.%d.%d', f'unexpected {%s}'" % (w(), r(0, 9), r(0, 30), r(0, 99), w()),
        lambda: "%s==%d.%d.%d --hash=sha256:%s" % (w(), r(0, 5), r(0, 30), r(0, 9), hexs(64)),
    ]
    return random.choice(kinds)()


def real_lines(limit=24 << 20):
    """Lines of the files described above, about `limit` bytes in all, in a fixed order."""
    lines, size = [], 0
    sources = [
        sorted(glob.glob("/usr/lib/python3*/*.py")),
        sorted(glob.glob("/usr/share/doc/*/changelog.Debian.gz")),
        sorted(glob.glob("/usr/share/doc/*/copyright")),
        sorted(glob.glob("/var/log/dpkg.log*") + glob.glob("/var/log/apt/history.log*")),
    ]
    for files in sources:
        budget = size + limit // len(sources)
        for f in files:
            if size >= budget:
                break
            try:
                raw = gzip.open(f).read() if f.endswith(".gz") else open(f, "rb").read()
            except OSError:
                continue
            for line in raw.decode("utf-8", "replace").splitlines():
                lines.append(line)
                size += len(line) + 1
    if not lines:
        sys.exit("--real: none of the source files is present")
    return lines


target = int(sys.argv[1]) * 1024 * 1024
flags = sys.argv[2:]
REAL = real_lines() if "--real" in flags else None
every = 128 if "--dense" in flags else 2048
end = " " if "--one-line" in flags else "\n"
at = 0
out = sys.stdout
written = 0
since_id = 0
while written < target:
    if "--json-logs" in flags:
        ts = "2024-06-15T10:%02d:%02d.%03dZ" % (random.randrange(60), random.randrange(60), random.randrange(1000))
        if since_id > every:
            if random.random() < 0.3:
                field = '"accountId":"%012d","msg":"assumed role"' % random.randrange(10**12)
            else:
                field = '"resource":"%s","msg":"throttled"' % random.choice(IDS)()
            line = '{"ts":"%s","level":"warn",%s}' % (ts, field)
            since_id = 0
        else:
            line = '{"ts":"%s","level":"%s","thread":"http-nio-8080-exec-%d","msg":%s,"latency_ms":%d,"trace":"%016x"}' % (
                ts, random.choice(["info", "debug"]), random.randrange(20),
                json.dumps(random.choice(PROSE + LOG)), random.randrange(500), random.getrandbits(64))
    elif "--varied" in flags:
        line = varied_line()
    elif REAL:
        # Runs of consecutive lines, from a new place now and then.
        at = random.randrange(len(REAL)) if random.random() < 0.01 else at + 1
        line = REAL[at % len(REAL)]
    else:
        line = random.choice(random.choice([PROSE, LOG, CODE]))
    if since_id > every:
        words = line.split(" ")
        words.insert(random.randrange(len(words)), random.choice(IDS)())
        line = " ".join(words)
        since_id = 0
    if "--base64" in flags:
        blob = base64.b64encode(random.getrandbits(8 * 600).to_bytes(600, "little")[: random.randrange(50, 600)])
        line += '\n{"type":"image","data":"' + blob.decode() + '"}'
    if end != "\n":
        line = line.replace("\n", end)
    line += end
    out.write(line)
    b = len(line.encode())
    written += b
    since_id += b
