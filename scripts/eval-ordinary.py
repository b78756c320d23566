#!/usr/bin/env python3
"""False positives on generated ordinary lines of the kinds the issue names: hashes, UUIDs, phone numbers,
versions, and the logs, digests, keys and numbers that sit next to them (20,000 lines, deterministic).

usage: eval-ordinary.py MASKGATE_BIN

Prints how many lines `maskgate mask` changed at all, by first word, and the first changed lines. The fixed
files of eval-docs.py are real but few in kind; these lines put the shapes that collide with ambiguous
identifiers (12-digit numbers, UUIDs, 64 hex, 40-character base64) next to the words that make context
(`owner`, `key`, `Zone`, `E<digits>`). Not here on purpose: "bank account <12 digits>", which the account
keyword masks by design.
"""
import random, uuid, hashlib, base64, subprocess, sys, collections
random.seed(7)
BIN = sys.argv[1]
def h(n): return hashlib.sha256(str(random.random()).encode()).hexdigest()[:n]
def u(): return str(uuid.UUID(int=random.getrandbits(128), version=4))
def phone():
    return random.choice([f"+1 {random.randint(200,999)} {random.randint(200,999)} {random.randint(1000,9999)}",
        f"({random.randint(200,999)}) {random.randint(200,999)}-{random.randint(1000,9999)}",
        f"+82-10-{random.randint(1000,9999)}-{random.randint(1000,9999)}",
        f"+8210{random.randint(10000000,99999999)}", f"010-{random.randint(1000,9999)}-{random.randint(1000,9999)}",
        f"+44 20 {random.randint(1000,9999)} {random.randint(1000,9999)}", f"{random.randint(10**11,10**12-1)}"])
def ver(): return random.choice([f"{random.randint(0,20)}.{random.randint(0,40)}.{random.randint(0,200)}", f"v{random.randint(1,30)}.{random.randint(0,9)}.{random.randint(0,9)}-rc.{random.randint(1,9)}",
    f"{random.randint(1,5)}.{random.randint(0,99)}.{random.randint(0,99)}.{random.randint(20100101,20251231)}-{random.randint(1,9)}", f"10.0.{random.randint(10000,22000)}.{random.randint(1,999)}"])
T=[
 lambda: f"commit {h(40)}", lambda: f"Merge {h(7)} into {h(7)}", lambda: f"sha256:{h(64)}", lambda: f"md5sum {h(32)}  file.tar.gz",
 lambda: f"  \"integrity\": \"sha512-{base64.b64encode(bytes.fromhex(h(64)*2)).decode()}\"",
 lambda: f"request_id={u()} status=200 duration={random.randint(1,999)}ms", lambda: f"trace {u().upper()} span {h(16)}",
 lambda: f"{{\"id\": \"{u()}\", \"name\": \"order-{random.randint(1,9999)}\"}}", lambda: f"idempotency key {u()}",
 lambda: f"Call me at {phone()} or {phone()}", lambda: f"phone: {phone()}", lambda: f"tel {phone()}",
 lambda: f"upgraded libfoo from {ver()} to {ver()}", lambda: f"Version: {ver()}", lambda: f"node {ver()} npm {ver()}",
 lambda: f"order #{random.randint(10**11,10**12-1)} shipped to customer {random.randint(10**5,10**6)}",
 lambda: f"Invoice {random.randint(10**11,10**12-1)} total $ {random.randint(1,9999)}.{random.randint(0,99):02d}",
 lambda: f"timestamp_ms={random.randint(1600000000000,1800000000000)} user_id={random.randint(10**11,10**12-1)}",
 lambda: f"ISBN 978-{random.randint(0,9)}-{random.randint(100,999)}-{random.randint(10000,99999)}-{random.randint(0,9)}",
 lambda: f"docker pull nginx@sha256:{h(64)}", lambda: f"git checkout -b feature/{h(8)}", lambda: f"0x{h(16)} 0x{h(8)}",
 lambda: f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{base64.b64encode(bytes.fromhex(h(64))).decode()[:43]} user@host",
 lambda: f"api_token: {base64.b64encode(bytes.fromhex(h(60))).decode()}", lambda: f"secret_santa list {h(10)}",
 lambda: f"2024-06-15T10:{random.randint(10,59)}:{random.randint(10,59)}.{random.randint(100,999)}Z INFO job {u()} done",
 lambda: f"mac {':'.join(h(2) for _ in range(6))} on eth0", lambda: f"IPv6 fe80::{h(4)}:{h(4)}:{h(4)}:{h(4)}%eth0",
 lambda: f"localhost 127.0.0.1:{random.randint(1024,65535)} and 0.0.0.0/0",
 lambda: f"The account {random.choice(['manager','team','holder'])} approved ticket {random.randint(10000,99999)}",
 lambda: f"owner: alice, group {random.randint(1000,9999)}",
 lambda: f"Zone {random.choice(['A','B','C'])}{random.randint(1,99)} temperature {random.randint(10,40)}C",
 lambda: f"E{random.randint(10**11,10**12-1)} error code", lambda: f"key_{h(6)} = {random.randint(0,10**6)}",
]
lines=[random.choice(T)() for _ in range(20000)]
out=subprocess.run([BIN,"mask"],input=("\n".join(lines)+"\n").encode(),capture_output=True).stdout.decode().split("\n")
ch=[(a,b) for a,b in zip(lines,out) if a!=b]
print(len(ch),"/",len(lines), f"{100*len(ch)/len(lines):.2f}%")
c=collections.Counter()
for a,b in ch: c[a.split()[0] if a.split() else a]+=1
print(c.most_common(20))
for a,b in ch[:25]: print(" ", a[:110], "=>", b[:110])
