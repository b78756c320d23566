#!/usr/bin/env python3
"""Recall of the pattern tier measured with the identifier catalogue's own regexes, through `maskgate mask`.

usage: eval-catalogue.py MASKGATE_BIN CATALOGUE_MD AWSCLI_EXAMPLES_DIR BOTOCORE_DATA_DIR [MASK_OPTIONS...]
       (e.g. `--config keep.toml` with `keep_aws_managed = true`)

eval-docs.py counts with strict reference regexes written for it; an outside check is as likely to take the
regexes of `aws-identifiers.md` as they stand. This script does: every row of tier `pattern`, each backticked
alternative of its regex column (Python `re`), over the awscli example pages (text, line by line) and botocore's
examples-1.json (JSON request bodies). A match counts as masked when it no longer occurs in its masked line or
document. The catalogue's regexes are broad on purpose: they also match documentation placeholders
(`X-Amz-Credential=[credential]`), words (`cluster-configuration`) and the AWS-managed names the catalogue
itself lists for an allow-list (`alias/aws/s3`, `arn:aws:iam::aws:policy/…`); the misses are printed by value.
"""
import collections
import json
import pathlib
import re
import subprocess
import sys

BIN, CATALOGUE, CLI_DIR, BOTO_DIR, *EXTRA = sys.argv[1:]
# Rows whose regex holds a backtick, which the column's own backticks cannot quote: copied from the catalogue.
OVERRIDE = {
    "10": [r"(?<![\w:/.-])arn:aws(?:-cn|-us-gov|-iso(?:-[bef])?|-eusc)?:[a-z0-9][a-z0-9.-]{0,62}:(?:(?:[a-z]{2}|eusc)(?:-(?:gov|iso[bef]?|de))?-[a-z]+-\d{1,2})?:(?:\d{12}|aws|[a-z0-9.-]+(?=:(?:path|action)/))?:[^\s\"'<>`,;{}\[\]()\\|]+"],
    "18": [r"(?<!\w)s3a?n?://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](?:/[^\s\"'<>`]*)?"],
}

rules = []
for line in open(CATALOGUE, encoding="utf-8"):
    if not re.match(r"\| \d+ \|", line):
        continue
    cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
    if not cells[5].startswith("pattern"):
        continue
    alts = OVERRIDE.get(cells[0])
    if alts is None:
        alts = []
        for seg in re.findall(r"`([^`]+)`", cells[4].replace("\\|", "|")):
            for part in re.split(r"\s+\|\s+", seg):
                # Drop the prose after a regex ("… only with context").
                part = re.split(r"\s+(?:ONLY|only|with|\(bare|context:)", part.strip())[0]
                if not part or part.startswith("(informative"):
                    continue
                try:
                    re.compile(part)
                except re.error:
                    continue  # prose in backticks
                alts.append(part)
    if alts:
        rules.append((f"{cells[0]:>2} {cells[2][:40]}", [re.compile(a) for a in alts]))

stats = collections.Counter()
missed = collections.defaultdict(collections.Counter)


def check(line, masked):
    for name, alts in rules:
        for rx in alts:
            for m in rx.finditer(line):
                v = m.group(0).rstrip(".:")
                if len(v) < 6:
                    continue
                hit = v not in masked
                stats[name, hit] += 1
                if not hit:
                    missed[name][v] += 1


pages = sorted(pathlib.Path(CLI_DIR).rglob("*.rst"))
text = "".join(p.read_text(errors="replace") for p in pages)
out = subprocess.run([BIN, "mask", *EXTRA], input=text.encode(), capture_output=True, check=True).stdout.decode()
lines, masked = text.split("\n"), out.split("\n")
assert len(lines) == len(masked)
for a, b in zip(lines, masked):
    check(a, b)
for f in sorted(pathlib.Path(BOTO_DIR).rglob("examples-1.json")):
    doc = json.loads(f.read_text())
    for examples in doc.get("examples", {}).values():
        for ex in examples:
            body = json.dumps({"input": ex.get("input", {}), "output": ex.get("output", {})}, indent=1)
            r = subprocess.run([BIN, "mask", "--json", *EXTRA], input=body.encode(), capture_output=True)
            if r.returncode == 0:
                check(body, r.stdout.decode())

total = [0, 0]
for name, _ in rules:
    hit, n = stats[name, True], stats[name, True] + stats[name, False]
    total[0] += hit
    total[1] += n
    if n:
        print(f"{name:44} {hit:6}/{n:<6} {100 * hit / n:6.2f} %")
    for v, c in missed[name].most_common(6):
        print(f"{'':8}missed {c:3}× {v[:100]}")
print(f"TOTAL {total[0]}/{total[1]} = {100 * total[0] / max(1, total[1]):.2f} %")
