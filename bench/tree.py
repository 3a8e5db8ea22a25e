#!/usr/bin/env python3
"""Listing and search latency in one big folder, on the embedded default
(SQLite) and on MariaDB.

    bench/tree.py [ENTRIES] [REQUESTS]      default: 10000 entries, 300 requests

Builds nothing: it runs target/release/api (cargo build --release --bins).
For each database it starts a fresh api, fills one folder with ENTRIES small
files (single-request uploads, 4 at a time: pan takes 4 at once per user), then times, one request at a
time so the figures are latencies and not throughput:
  - GET /folder/list?limit=100 pages, walking the cursor from the first page
    to the last (again and again), sorted by name, by size and by time;
  - GET /folder/search?q=... for a rare name, a common substring and a
    one-letter query (limit 100).
Prints p50 / p99 / max in milliseconds. MariaDB comes from scripts/services.
"""
import json, os, socket, statistics, subprocess, sys, tempfile, time, urllib.error, urllib.parse, urllib.request
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRIES = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
REQUESTS = int(sys.argv[2]) if len(sys.argv) > 2 else 300


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, token=None, body=None, form=None):
    headers = {}
    data = None
    if token:
        headers["authorization"] = f"Bearer {token}"
    if body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    if form is not None:
        boundary = "pan-bench-boundary"
        parts = []
        for name, value, filename in form:
            disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
            parts.append(f"--{boundary}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + value + b"\r\n")
        data = b"".join(parts) + f"--{boundary}--\r\n".encode()
        headers["content-type"] = f"multipart/form-data; boundary={boundary}"
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req) as r:
        raw = r.read()
        return json.loads(raw) if raw else None


def percentiles(ms):
    ms = sorted(ms)
    p = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]
    return f"p50 {statistics.median(ms):6.1f}  p99 {p(0.99):6.1f}  max {ms[-1]:6.1f} ms  (n={len(ms)})"


def timed(f):
    t0 = time.perf_counter()
    out = f()
    return out, (time.perf_counter() - t0) * 1000


def run(label, env):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = tempfile.mkdtemp(prefix="pan-tree-")
    env = dict(os.environ, PAN_DATA_DIR=data, PAN_LISTEN=f"127.0.0.1:{port}", PAN_LOG="warn",
               PAN_SIGNUP_RATE="0", PAN_SIGNIN_RATE="0", **env)
    api = subprocess.Popen([os.path.join(ROOT, "target/release/api")], env=env,
                           stdout=subprocess.DEVNULL, stderr=open(os.path.join(data, "api.err"), "w"))
    try:
        for _ in range(300):
            try:
                call(base, "GET", "/healthz")
                break
            except Exception:
                time.sleep(0.1)
        call(base, "POST", "/usr/signup", body={"username": "tree", "password": "benchmark"})
        token = call(base, "POST", "/usr/signin", body={"username": "tree", "password": "benchmark"})["token"]
        folder = call(base, "POST", "/folder/create", token, body={"name": "big"})["id"]
        words = ["report", "photo", "invoice", "notes", "draft", "backup", "scan", "budget"]

        def put(i):
            name = f"{words[i % len(words)]}-{i:06d}.txt"
            body = f"entry {i}".encode() + b"x" * (i % 997)
            form = [("file", body, "f"), ("filename", name.encode(), None), ("folder", folder.encode(), None)]
            for _ in range(100):
                try:
                    return call(base, "POST", "/file/upload", token, form=form)
                except urllib.error.HTTPError as e:
                    if e.code not in (429, 503):
                        raise
                    time.sleep(float(e.headers.get("retry-after", "1")))
            raise RuntimeError(f"{name}: still refused after 100 tries")

        t0 = time.time()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(put, range(ENTRIES)))
        print(f"[{label}] filled one folder with {ENTRIES} files in {time.time() - t0:.0f} s")

        for sort in ["name", "size", "time"]:
            lat, cursor = [], None
            while len(lat) < REQUESTS:
                q = f"/folder/list?id={folder}&limit=100&sort={sort}" + (f"&cursor={cursor}" if cursor else "")
                page, ms = timed(lambda: call(base, "GET", q, token))
                lat.append(ms)
                cursor = page.get("next_cursor")
            print(f"[{label}] list 100 of {ENTRIES}, by {sort:4}: {percentiles(lat)}")
        for q in ["000123", "report", "e"]:
            lat = []
            for _ in range(max(REQUESTS // 10, 20)):
                res, ms = timed(lambda: call(base, "GET", f"/folder/search?limit=100&q={urllib.parse.quote(q)}", token))
                lat.append(ms)
            print(f"[{label}] search {q!r:9} ({len(res['entries'])} on the first page): {percentiles(lat)}")
    finally:
        api.terminate()
        api.wait()
        subprocess.run(["rm", "-rf", data])


def main():
    services = subprocess.run([os.path.join(ROOT, "scripts/services")], capture_output=True, text=True, check=True)
    env = dict(line.split("=", 1) for line in services.stdout.split() if "=" in line)
    mysql = env["PAN_TEST_MYSQL_URL"]
    db = f"pan_test_tree_{os.getpid()}"  # the test user may create pan_test_* databases
    u = urllib.parse.urlparse(mysql)
    subprocess.run(["mariadb", "-h", u.hostname, "-P", str(u.port or 3306), "-u", u.username, f"-p{u.password}",
                    "-e", f"CREATE DATABASE {db} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"], check=True)
    try:
        run("sqlite ", {})
        run("mariadb", {"DATABASE_URL": f"{mysql}/{db}"})
    finally:
        subprocess.run(["mariadb", "-h", u.hostname, "-P", str(u.port or 3306), "-u", u.username,
                        f"-p{u.password}", "-e", f"DROP DATABASE IF EXISTS {db}"])


if __name__ == "__main__":
    main()
