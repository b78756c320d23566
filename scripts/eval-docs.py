#!/usr/bin/env python3
"""Recall on AWS documentation examples and false positives on ordinary lines, measured through `maskgate mask`.

usage: eval-docs.py MASKGATE_BIN AWSCLI_EXAMPLES_DIR BOTOCORE_DATA_DIR ORDINARY_FILES...

Recall: well-formed pattern-tier identifiers found by strict reference regexes (independent of maskgate's own
patterns) in the awscli example pages and botocore examples-1.json, and ambiguous ones with their flag/key
(account ids, KMS key ids, hosted zones, API Gateway ids, CloudFront ids, secret keys, canonical user ids), and
resource names after their JSON key; an identifier counts as masked when it no longer occurs in its masked line
(text) or document (JSON).
False positives: the share of ordinary lines (code, logs, changelogs) that maskgate changes at all.
"""
import json
import pathlib
import re
import subprocess
import sys

BIN, CLI_DIR, BOTO_DIR, *ORDINARY = sys.argv[1:]
HEX = r"(?:[0-9a-f]{8}|[0-9a-f]{17})"
PREFIXES = "i|ami|vol|snap|sg|subnet|vpc|igw|eni|rtb|acl|eipalloc|eipassoc|vpce|pcx|tgw|tgw-attach|nat|dopt|cgw|vgw|vpn|eigw|lt|fl|fs|fsmt"
REGION = r"(?:[a-z]{2}|eusc)(?:-(?:gov|iso[bef]?|de))?-[a-z]+-[0-9]{1,2}"
PATTERN = {
    "resource_id": rf"(?<![\w-])(?:{PREFIXES})-{HEX}(?![\w-])",
    "arn": r"(?<![\w:/.-])arn:aws(?:-cn|-us-gov)?:[a-z0-9-]+:(?:" + REGION + r")?:\d{12}:[A-Za-z0-9/_+=,.@:*-]+",
    "access_key": r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])",
    "private_ip": r"(?<![\w.])(?:10(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}|172\.(?:1[6-9]|2\d|3[01])(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){2}|192\.168(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){2})(?![\w.]|/\d)",
    "s3_uri": r"(?<![\w])s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](?=/|\s|$|\")",
}
AMBIGUOUS = {
    "account_flag": r"--(?:account-id|owner-ids|source-account)[ =](\d{12})\b",
    "account_key": r"\"(?:AccountId|OwnerId|Owner|SourceAccount|RegistryId)\"\s*:\s*\"(\d{12})\"",
    "kms_key": r"\"(?:KeyId|KmsKeyId|TargetKeyId)\"\s*:\s*\"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\"",
    "kms_flag": r"--(?:key-id|kms-key-id)[ =]([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b",
    "zone": r"(?:--hosted-zone-id[ =]|\"HostedZoneId\"\s*:\s*\"(?:/hostedzone/)?)(Z[A-Z0-9]{7,32})\b",
    "apigw_flag": r"--(?:rest-api-id|api-id)[ =]([a-z0-9]{10})\b",
    "apigw_key": r"\"(?:restApiId|RestApiId|apiId|ApiId)\"\s*:\s*\"([a-z0-9]{10})\"",
    "cloudfront": r"(?:--(?:distribution-)?id[ =]|\"DistributionId\"\s*:\s*\")(E[A-Z0-9]{12,13})\b",
    "secret_key": r"\"(?:SecretAccessKey|SecretKey)\"\s*:\s*\"([A-Za-z0-9/+]{40})\"",
    "canonical_user": r"(?:\"ID\"\s*:\s*\"|\bid=)([0-9a-f]{64})\b",
    # Any JSON key that holds the word (`InstanceOwnerId`, `MasterAccountId`, `awsAccountNumber`).
    "account_word_key": r"\"\w*(?:[Aa]ccount|[Oo]wner)\w*\"\s*:\s*\"(\d{12})\"",
    # ARNs whose region is a placeholder (`region`, `<region>`, `${AWS::Region}`): the account field.
    "arn_placeholder_region": r"\barn:[\w${}:-]+?:[a-z0-9-]+:(?:[A-Za-z_]+|<[^>]*>|\$\{[^}]*\}):(\d{12}):",
}
# Names after their key, in JSON (request bodies, and CLI output pasted as text): not a tier of the target,
# reported on their own.
NAMES = {
    "name_key": r"\"(?:FunctionName|TableName|DBInstanceIdentifier|DBClusterIdentifier|BucketName|Bucket|RoleName|UserName|StackName|QueueName|TopicName|RepositoryName|ClusterName|LogGroupName|JobName|CacheClusterId)\"\s*:\s*\"([A-Za-z0-9][A-Za-z0-9._-]{2,62})\"",
}


def mask_text(text):
    r = subprocess.run([BIN, "mask"], input=text.encode(), capture_output=True, check=True)
    return r.stdout.decode()


def mask_json(doc):
    r = subprocess.run([BIN, "mask", "--json"], input=doc.encode(), capture_output=True)
    return r.stdout.decode() if r.returncode == 0 else None


stats = {}


def count(kind, hit):
    t = stats.setdefault(kind, [0, 0])
    t[0] += 1
    t[1] += hit


missed = []
# awscli example pages: text, line by line.
pages = sorted(pathlib.Path(CLI_DIR).rglob("*.rst"))
text = "".join(p.read_text(errors="replace") for p in pages)
lines = text.split("\n")
masked_lines = mask_text(text).split("\n")
assert len(lines) == len(masked_lines), (len(lines), len(masked_lines))
for line, out in zip(lines, masked_lines):
    for kind, rx in PATTERN.items():
        for m in re.finditer(rx, line):
            hit = m.group(0) not in out
            count("pattern/" + kind, hit)
            if not hit and len(missed) < 40:
                missed.append((kind, m.group(0)))
    for kind, rx in AMBIGUOUS.items():
        for m in re.finditer(rx, line):
            count("ambiguous/" + kind, m.group(1) not in out)
    for kind, rx in NAMES.items():
        for m in re.finditer(rx, line):
            count("names/" + kind, m.group(1) not in out)
# botocore examples: JSON documents, masked as request bodies.
for f in sorted(pathlib.Path(BOTO_DIR).rglob("examples-1.json")):
    doc = json.loads(f.read_text())
    for op, examples in doc.get("examples", {}).items():
        for ex in examples:
            body = json.dumps({"input": ex.get("input", {}), "output": ex.get("output", {})}, indent=1)
            out = mask_json(body)
            if out is None:
                continue
            for kind, rx in PATTERN.items():
                for m in re.finditer(rx, body):
                    hit = m.group(0) not in out
                    count("pattern/" + kind, hit)
                    if not hit and len(missed) < 40:
                        missed.append((kind, m.group(0)))
            for kind, rx in AMBIGUOUS.items():
                for m in re.finditer(rx, body):
                    count("ambiguous/" + kind, m.group(1) not in out)
            # (A plain-word name is masked where its key says what it is, not everywhere: in a document that
            # also holds the word elsewhere it is counted as missed.)
            for kind, rx in NAMES.items():
                for m in re.finditer(rx, body):
                    count("names/" + kind, m.group(1) not in out)

# Ordinary lines.
ordinary = []
for path in ORDINARY:
    ordinary += pathlib.Path(path).read_text(errors="replace").split("\n")
ordinary = [l for l in ordinary if l.strip()]
out = mask_text("\n".join(ordinary)).split("\n")
changed = [(a, b) for a, b in zip(ordinary, out) if a != b]

tot = {"pattern": [0, 0], "ambiguous": [0, 0], "names": [0, 0]}
for kind, (n, hit) in sorted(stats.items()):
    tier = kind.split("/")[0]
    tot[tier][0] += n
    tot[tier][1] += hit
    print(f"{kind:28} {hit:6}/{n:<6} {100 * hit / n:6.2f} %")
for tier, (n, hit) in tot.items():
    if n:
        print(f"TOTAL {tier:22} {hit:6}/{n:<6} {100 * hit / n:6.2f} %")
print(f"ordinary lines changed: {len(changed)}/{len(ordinary)} = {100 * len(changed) / max(1, len(ordinary)):.3f} %")
for kind, v in missed[:20]:
    print("missed", kind, v)
for a, b in changed[:15]:
    print("changed:", a[:140])
