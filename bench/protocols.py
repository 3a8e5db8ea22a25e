#!/usr/bin/env python3
"""pan's protocol benchmark (issues 26 and 27): real tus and WebDAV clients
against pan and against a baseline measured in the same run, on the same
machine, with the same client; the embedded deployment (one `api` on SQLite
and local directories).

Run it through bench/run, which installs the tools (scripts/deps bench tus
dav) and builds pan:

    bench/run --protocols             # 1 GiB, 3 runs, 10,000 small files
    bench/run --protocols --quick     # 256 MiB, 1 run, 1,000 small files (a check that it works)
    bench/run --protocols --help      # every option

RUNS times, interleaved (each step after `sync`, untimed):

  tus (issue 27)  SIZE from disk (an fs.ReadStream) with tus-js-client 4.3.1
                  in Node to pan's `/tus/` (Bearer token): chunkSize Infinity
                  (its default: one PATCH) and --tus-chunk (64 MiB: a PATCH
                  per chunk), timed from start() to onSuccess, i.e. until
                  the file is committed (the last PATCH waits for pan's
                  hashing and commit)   vs   nginx's dav PUT of the same
                  file over one connection (curl -T; nginx spools the body
                  to a temporary file and renames it, without fsync);
                  `pan put` (the CLI: hashes first, then 8 MiB chunks over
                  4 connections) beside them for information; also the
                  file as one tus PATCH sent by curl (the baseline's own
                  client: pan's side alone), and the serial baseline of
                  bench/compare.py's end-to-end figure (nginx's PUT, then
                  `openssl dgst -sha1`, then `-sha256`), since a tus upload
                  is hashed by the server before it answers
  WebDAV (26)     `rclone copy` (1.75.2, the wheel of scripts/deps dav) of
                  SIZE to pan's `/remote.php/dav/files/<user>/` with
                  vendor=nextcloud (Basic with an app password; rclone sends
                  files over 10 MiB as Nextcloud chunked uploads of 10 MiB)
                  vs   the same rclone copying to `rclone serve webdav` on a
                  local directory (vendor=rclone, Basic too: one PUT);
                  then --small-files (10,000) files of --small-kib (4 KiB)
                  into one new folder, both ways (4 transfers, 8 checkers,
                  rclone's defaults; fresh bytes each run), with
                  `--webdav-pacer-min-sleep 0s`: rclone's pacer otherwise
                  starts at most one API call per 10 ms over all transfers
                  (about 3 calls a file: ~33 files/s, whatever the server);
                  and once, --paced-files (1,000) with that default pacer
then, once the small files are in, with wrk (C, Lua scripts):

  PROPFIND        Depth 1 of a 10,000-entry folder (--propfind-connections,
                  4) and Depth 0 of one file (--wrk-connections, 64), the
                  properties rclone asks for, Basic: req/s, p50, p99   vs
                  the same against `rclone serve webdav`
  tus HEAD/PATCH  --wrk-connections (64) tus uploads created (Upload-Length
                  64 MiB); HEADs over 64 connections with ab (wrk takes a
                  HEAD answer without Content-Length for one with a body to
                  come); PATCHes of --patch-kib (4 KiB) at each upload's
                  offset with wrk, one thread and connection per upload
                  (each PATCH's bytes are durable before it answers); then
                  both at once, 32 connections each: p50, p99, req/s; for
                  reference nginx answering HEAD of an empty static file
                  (ab) and PUT of --patch-kib (wrk) over as many connections

Ratios are pan's throughput (GB/s, files/s, req/s) over the baseline's, or
pan's latency over the baseline's. Files pan stored are deleted for good
after each large upload (each upload gets fresh last bytes, so nothing is
deduplicated). Per-user limits are raised as in bench/compare.py; the
app-password limit stays at its default (only wrong ones count). Writes
bench/results/<date>-protocols.json and .md.
"""
import argparse
import base64
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare as C  # noqa: E402  (the servers, the client helpers, the statistics)
from compare import BenchError, GIB, MIB, ROOT, log, median, now, summary  # noqa: E402

TUS_MODULES = os.path.join(ROOT, "tests/tus/node_modules")
RCLONE = os.path.join(ROOT, "target/dav-venv/bin/rclone")
# Upload-Length of the uploads that take the small PATCHes: far more than a
# wrk run sends to one, and 128 of them within the free disk pan checks.
LATENCY_UPLOAD = 64 * MIB

# The body rclone's webdav backend sends with every PROPFIND (listing and
# reading one object's metadata), its Nextcloud properties included.
PROPFIND_BODY = """<?xml version="1.0"?>
<d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns" xmlns:nc="http://nextcloud.org/ns">
 <d:prop>
  <d:displayname />
  <d:getlastmodified />
  <d:getcontentlength />
  <d:resourcetype />
  <d:getcontenttype />
  <oc:checksums />
  <oc:permissions />
 </d:prop>
</d:propfind>
"""

PROPFIND_LUA = """
wrk.method = "PROPFIND"
wrk.body = [[%s]]
wrk.headers["Depth"] = os.getenv("DAV_DEPTH")
wrk.headers["Authorization"] = os.getenv("DAV_AUTH")
wrk.headers["Content-Type"] = "application/xml; charset=utf-8"
""" % PROPFIND_BODY

# One wrk thread per connection, so a thread's globals are its connection's:
# each sends to its own upload (TUS_IDS), at the offset the last answer gave.
TUS_LUA = """
local n = 0
local threads = {}
local ids, offsets = {}, {}
for x in string.gmatch(os.getenv("TUS_IDS"), "[^,]+") do ids[#ids + 1] = x end
for x in string.gmatch(os.getenv("TUS_OFFSETS"), "[^,]+") do offsets[#offsets + 1] = x end
function setup(thread)
  n = n + 1
  thread:set("id", ids[(n - 1) % #ids + 1])
  thread:set("offset", offsets[(n - 1) % #ids + 1])
  thread:set("bad", "")
  table.insert(threads, thread)
end
function init(args)
  mode = os.getenv("TUS_MODE")
  auth = os.getenv("TUS_AUTH")
  path = os.getenv("TUS_PATH")
  body = string.rep("x", tonumber(os.getenv("PATCH_BYTES")))
end
function request()
  if mode == "head" then
    return wrk.format("HEAD", path .. id, {["Tus-Resumable"] = "1.0.0", ["Authorization"] = auth})
  elseif mode == "put" then
    return wrk.format("PUT", path .. id, {}, body)
  end
  return wrk.format("PATCH", path .. id, {["Tus-Resumable"] = "1.0.0", ["Authorization"] = auth,
    ["Content-Type"] = "application/offset+octet-stream", ["Upload-Offset"] = tostring(offset)}, body)
end
function response(status, headers, body)
  local o = headers["Upload-Offset"] or headers["upload-offset"]
  if o then offset = o end
  if status > 299 and #bad < 200 then bad = bad .. status .. ":" .. string.gsub(string.sub(body, 1, 120), "%s+", " ") .. "; " end
end
function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    local b = t:get("bad")
    if b ~= "" then io.write("bad answers: " .. b .. "\\n") end
  end
end
"""


def memory_kib(pid):
    """(VmRSS, VmHWM) of a process, KiB."""
    got = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                got[k] = int(v.split()[0])
    return got.get("VmRSS", 0), got.get("VmHWM", 0)


def wrk_run(url, conns, secs, script, env, threads=2):
    """wrk with a Lua script: req/s, p50, p99 (ms), non-2xx, socket errors."""
    threads = min(threads, conns)
    argv = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{secs}s", "--latency", "--timeout", "30s", "-s", script, url]
    r = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ, **env))
    if r.returncode or r.stderr.strip():  # a Lua error is only said on stderr
        raise BenchError(f"wrk: {r.stderr.strip()[:300]}")
    out = r.stdout

    def ms(pct):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return float(m.group(1)) * {"us": 1e-3, "ms": 1, "s": 1e3}[m.group(2)] if m else None

    m = re.search(r"(\d+) requests in", out)
    reqs = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    bad = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: (.*)", out)
    bad_answers = re.findall(r"^bad answers: (.*)$", out, re.M)[:5]
    return {"bad_answers": bad_answers, "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p50_ms": ms(50),
            "p99_ms": ms(99), "requests": reqs, "non_2xx": bad, "socket_errors": m.group(1) if m else None}


def ab_head(url, conns, secs, headers, work):
    """ab (apache2-utils) sending HEAD over kept-alive connections: req/s,
    p50, p99 (ms, from its CSV of percentiles), failed and non-2xx."""
    csv = os.path.join(work, "ab.csv")
    argv = ["ab", "-q", "-i", "-k", "-c", str(conns), "-t", str(secs), "-n", "100000000", "-e", csv]
    for h in headers:
        argv += ["-H", h]
    r = subprocess.run(argv + [url], capture_output=True, text=True)
    if r.returncode:
        raise BenchError(f"ab: {(r.stderr or r.stdout).strip()[-300:]}")
    out = r.stdout
    pct = {}
    with open(csv) as f:
        for line in f:
            k, _, v = line.strip().partition(",")
            if k.isdigit():
                pct[int(k)] = float(v)
    m = re.search(r"Non-2xx responses:\s+(\d+)", out)
    bad = int(m.group(1)) if m else 0
    m = re.search(r"Failed requests:\s+(\d+)", out)
    failed = int(m.group(1)) if m else 0
    m = re.search(r"Keep-Alive requests:\s+(\d+)", out)
    return {"rps": float(re.search(r"Requests per second:\s+([\d.]+)", out).group(1)), "p50_ms": pct.get(50),
            "p99_ms": pct.get(99), "requests": int(re.search(r"Complete requests:\s+(\d+)", out).group(1)),
            "non_2xx": bad + failed, "keepalive": int(m.group(1)) if m else None, "socket_errors": None}


class RcloneServe:
    """`rclone serve webdav` on a local directory, with Basic auth."""

    def __init__(self, work, user, password):
        self.dir = os.path.join(work, "rclone-serve")
        os.makedirs(self.dir)
        self.port = C.free_port()
        self.proc = C.spawn([RCLONE, "serve", "webdav", self.dir, "--addr", f"127.0.0.1:{self.port}",
                             "--user", user, "--pass", password, "--config", "/dev/null", "-q"],
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "rclone-serve.log"), "w"))
        self.base = f"http://127.0.0.1:{self.port}"
        C.wait_http(self.base + "/", self.proc, "rclone serve webdav", ok=(200, 401))

    def pids(self):
        return [self.proc.pid]


class Protocols:
    def __init__(self, args):
        self.a = args
        self.results = {"runs": {}, "wrk": {}, "skipped": [], "errors": []}
        self.tag = 0

    def next_tag(self):
        self.tag += 1
        return self.tag

    def error(self, msg):
        log("ERROR: " + msg)
        self.results["errors"].append(msg)

    def rec(self, key, value):
        self.results["runs"].setdefault(key, []).append(value)

    # -- the data

    def write_big(self):
        self.big = os.path.join(self.work, "big.bin")
        gen = C.random_stream()
        with open(self.big, "wb") as f:
            for _ in range(self.a.size // C.CHUNK):
                f.write(gen.read(C.CHUNK))
            f.flush()
            os.fdatasync(f.fileno())
        gen.close()

    def freshen_big(self):
        """New last 16 bytes: content pan has never seen (no deduplication)."""
        fd = os.open(self.big, os.O_WRONLY)
        try:
            os.pwrite(fd, os.urandom(16), self.a.size - 16)
        finally:
            os.close(fd)

    def small_dir(self, run, n):
        d = os.path.join(self.work, f"small-{run}")
        if os.path.isdir(d):
            shutil.rmtree(d)
        os.makedirs(d)
        lo, hi = self.a.small_kib
        for i in range(n):
            # Sizes spread evenly over lo..hi KiB (in whole KiB, not sorted).
            size = 1024 * (lo + (i * 37) % (hi - lo + 1))
            with open(os.path.join(d, f"f{i:05d}.bin"), "wb") as f:
                f.write(os.urandom(size))
        return d

    # -- pan

    def start_pan(self):
        pan = C.Pan("embedded", self.a.bin_dir, dict(C.BENCH_LIMITS), os.path.join(self.work, "pan"))
        made = pan.http.call("POST", "/usr/apppassword/create", {"name": "bench"})
        self.user, self.app_password = "bench", made["password"]
        self.basic = "Basic " + base64.b64encode(f"{self.user}:{self.app_password}".encode()).decode()
        self.dav = f"{pan.base}/remote.php/dav/files/{self.user}"
        return pan

    def pan_delete(self, file_id=None, name=None):
        """Deletes a file for good: by id, or the newest live file called name."""
        if file_id is None:
            files = self.pan.http.call("GET", "/file/query?limit=20")["files"]
            file_id = next((f["id"] for f in files if f["filename"] == name), None)
            if file_id is None:
                raise BenchError(f"pan has no file {name!r} to delete")
        self.pan.http.call("DELETE", f"/file/delete?id={file_id}&permanent=true", ok=(200, 204))

    # -- tus

    def tus(self, chunk, label):
        self.freshen_big()
        C.sync()
        name = f"tus-{self.next_tag()}.bin"
        cpu0 = C.cpu_seconds(self.pan.pids())
        t0 = now()
        err = os.path.join(self.work, "node.err")
        p = C.spawn(["node", os.path.join(ROOT, "bench/tus_upload.mjs"), self.pan.base, f"Bearer {self.pan.token}",
                     self.big, chunk, name], stdout=subprocess.PIPE, stderr=open(err, "w"), text=True,
                    env=dict(os.environ, TUS_MODULES=TUS_MODULES))
        stdout = p.stdout.read()
        _, status, ru = os.wait4(p.pid, 0)  # its CPU (the client's), as it is reaped
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = now() - t0
        cpu = C.cpu_seconds(self.pan.pids()) - cpu0
        if p.returncode:
            raise BenchError(f"tus-js-client ({label}): {open(err).read().strip()[-500:]}")
        self.rec(f"tus_{label}_client_cpu_s", ru.ru_utime + ru.ru_stime)
        r = subprocess.CompletedProcess(p.args, 0, stdout, "")
        out = json.loads(r.stdout.strip().splitlines()[-1])
        self.rec(f"tus_{label}_s", out["seconds"])
        self.rec(f"tus_{label}_wall_s", wall)
        self.rec(f"tus_{label}_cpu_s", cpu)
        self.results.setdefault("tus_requests", {})[label] = out["requests"]
        log(f"tus-js-client chunkSize {chunk}: {out['seconds']:.2f} s "
            f"({C.gbps(self.a.size, out['seconds']):.2f} GB/s), requests {out['requests']}")
        self.pan_delete(out["fileId"], name)

    def curl_tus(self):
        """The same file as one tus PATCH sent by curl, the nginx PUT's client
        (create untimed): pan's side of tus without tus-js-client's cost."""
        self.freshen_big()
        name = f"curl-{self.next_tag()}.bin"
        h = self.pan.http
        h.c.request("POST", "/tus/", headers={
            "Authorization": f"Bearer {self.pan.token}", "Tus-Resumable": "1.0.0", "Upload-Length": str(self.a.size),
            "Upload-Metadata": "filename " + base64.b64encode(name.encode()).decode()})
        r = h.c.getresponse()
        r.read()
        if r.status != 201:
            raise BenchError(f"POST /tus/: HTTP {r.status}")
        C.sync()
        cpu0 = C.cpu_seconds(self.pan.pids())
        t, _, _ = C.curl_ingest([("PATCH", self.pan.base + r.getheader("Location"), self.big, [
            f"Authorization: Bearer {self.pan.token}", "Tus-Resumable: 1.0.0", "Upload-Offset: 0",
            "Content-Type: application/offset+octet-stream"])], 1, (204,))
        self.rec("curl_tus_s", t)
        self.rec("curl_tus_cpu_s", C.cpu_seconds(self.pan.pids()) - cpu0)
        log(f"curl tus PATCH: {t:.2f} s ({C.gbps(self.a.size, t):.2f} GB/s)")
        self.pan_delete(name=name)

    def nginx_put(self):
        C.sync()
        cpu0 = C.cpu_seconds(self.nginx.pids())
        t, _, _ = C.curl_ingest([("PUT", f"{self.nginx.base}/dav/big.bin", self.big, [])], 1, (201, 204))
        self.rec("nginx_put_s", t)
        self.rec("nginx_put_cpu_s", C.cpu_seconds(self.nginx.pids()) - cpu0)
        log(f"nginx PUT: {t:.2f} s ({C.gbps(self.a.size, t):.2f} GB/s)")
        self.nginx.clear_dav()
        # The serial baseline of bench/compare.py's end-to-end figure: what
        # pan does besides landing the bytes (a tus upload is server-hashed).
        for alg in ("sha1", "sha256"):
            t, cpu = C.timed_cpu(["openssl", "dgst", f"-{alg}", self.big])
            self.rec(f"openssl_{alg}_s", t)
            self.rec(f"openssl_{alg}_cpu_s", cpu)

    def pan_put(self):
        self.freshen_big()
        home = os.path.join(self.work, "home")
        os.makedirs(home, exist_ok=True)
        env = dict(os.environ, PAN_SERVER=self.pan.base, PAN_TOKEN=self.pan.token, HOME=home)
        C.sync()
        t = C.timed([os.path.join(self.a.bin_dir, "pan"), "-q", "put", "--jobs", "4", self.big,
                     f"/put-{self.next_tag()}"], env=env)
        self.rec("pan_put_s", t)
        log(f"pan put: {t:.2f} s ({C.gbps(self.a.size, t):.2f} GB/s)")
        self.pan_delete(name="big.bin")

    # -- WebDAV with rclone

    def rclone_env(self):
        obscured = subprocess.run([RCLONE, "obscure", self.app_password], capture_output=True, text=True,
                                  check=True).stdout.strip()
        base_pass = subprocess.run([RCLONE, "obscure", self.serve_password], capture_output=True, text=True,
                                   check=True).stdout.strip()
        cfg = os.path.join(self.work, "rclone.conf")
        open(cfg, "w").close()
        return dict(os.environ, RCLONE_CONFIG=cfg,
                    RCLONE_CONFIG_PAN_TYPE="webdav", RCLONE_CONFIG_PAN_URL=self.dav,
                    RCLONE_CONFIG_PAN_VENDOR="nextcloud", RCLONE_CONFIG_PAN_USER=self.user,
                    RCLONE_CONFIG_PAN_PASS=obscured,
                    RCLONE_CONFIG_BASE_TYPE="webdav", RCLONE_CONFIG_BASE_URL=self.serve.base,
                    RCLONE_CONFIG_BASE_VENDOR="rclone", RCLONE_CONFIG_BASE_USER=self.user,
                    RCLONE_CONFIG_BASE_PASS=base_pass)

    def rclone(self, *args):
        """(seconds, client cpu-seconds) of one rclone command; its errors fail the step."""
        argv = [RCLONE, *args, "--retries", "1", "-q"]
        t0 = now()
        p = C.spawn(argv, env=self.renv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        err = p.stderr.read()
        _, status, ru = os.wait4(p.pid, 0)
        t = now() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode:
            raise BenchError(f"rclone {' '.join(args)}: exit {p.returncode}: {err.strip()[-500:]}")
        return t, ru.ru_utime + ru.ru_stime

    def rclone_big(self, remote, label, run):
        self.freshen_big()
        src = os.path.join(self.work, "bigdir")
        os.makedirs(src, exist_ok=True)
        link = os.path.join(src, "big.bin")
        if not os.path.exists(link):
            os.link(self.big, link)
        pids = self.pan.pids() if label == "pan" else self.serve.pids()
        C.sync()
        cpu0 = C.cpu_seconds(pids)
        t, client_cpu = self.rclone("copy", src, f"{remote}:big-{run}")
        self.rec(f"rclone_big_{label}_s", t)
        self.rec(f"rclone_big_{label}_server_cpu_s", C.cpu_seconds(pids) - cpu0)
        self.rec(f"rclone_big_{label}_client_cpu_s", client_cpu)
        log(f"rclone copy {self.a.size // MIB} MiB to {label}: {t:.2f} s ({C.gbps(self.a.size, t):.2f} GB/s)")
        if label == "pan":
            self.pan_delete(name="big.bin")
        else:
            shutil.rmtree(os.path.join(self.serve.dir, f"big-{run}"))

    def rclone_small(self, remote, label, src, run, paced=False):
        """The files of src into a new folder; without rclone's pacer (10 ms
        between API calls over all transfers, about 3 calls a file: ~33
        files/s whatever the server) unless `paced`."""
        pids = self.pan.pids() if label == "pan" else self.serve.pids()
        n = len(os.listdir(src))
        key = "paced" if paced else "small"
        C.sync()
        cpu0 = C.cpu_seconds(pids)
        t, client_cpu = self.rclone("copy", src, f"{remote}:{key}-{run}",
                                    *([] if paced else ["--webdav-pacer-min-sleep", "0s"]))
        self.rec(f"rclone_{key}_{label}_s", t)
        self.rec(f"rclone_{key}_{label}_server_cpu_s", C.cpu_seconds(pids) - cpu0)
        self.rec(f"rclone_{key}_{label}_client_cpu_s", client_cpu)
        log(f"rclone copy {n} files to {label}{' (default pacer)' if paced else ''}: {t:.2f} s ({n / t:.0f} files/s)")

    def check_small(self, run):
        """The folder holds every file, on both (untimed)."""
        n = len(os.listdir(os.path.join(self.serve.dir, f"small-{run}")))
        if n != self.a.small_files:
            raise BenchError(f"rclone serve holds {n} of {self.a.small_files} small files")
        out = subprocess.run([RCLONE, "lsf", "pan:small-" + str(run), "--files-only"], env=self.renv,
                             capture_output=True, text=True)
        n = len(out.stdout.split())
        if n != self.a.small_files:
            raise BenchError(f"pan lists {n} of {self.a.small_files} small files")

    # -- wrk

    def propfind(self):
        a = self.a
        script = os.path.join(self.work, "propfind.lua")
        with open(script, "w") as f:
            f.write(PROPFIND_LUA)
        serve_basic = "Basic " + base64.b64encode(f"{self.user}:{self.serve_password}".encode()).decode()
        targets = [
            ("depth1one_pan", f"{self.dav}/small-0/", "1", self.basic, 1),
            ("depth1one_rclone", f"{self.serve.base}/small-0/", "1", serve_basic, 1),
            ("depth1_pan", f"{self.dav}/small-0/", "1", self.basic, a.propfind_connections),
            ("depth1_rclone", f"{self.serve.base}/small-0/", "1", serve_basic, a.propfind_connections),
            ("depth0_pan", f"{self.dav}/small-0/f00000.bin", "0", self.basic, a.wrk_connections),
            ("depth0_rclone", f"{self.serve.base}/small-0/f00000.bin", "0", serve_basic, a.wrk_connections),
        ]
        out = {k: [] for k, *_ in targets}
        for _ in range(a.runs):
            for k, url, depth, auth, conns in targets:
                pids = self.pan.pids() if k.endswith("pan") else self.serve.pids()
                cpu0 = C.cpu_seconds(pids)
                before = memory_kib(pids[0])
                r = wrk_run(url, conns, a.wrk_seconds, script, {"DAV_DEPTH": depth, "DAV_AUTH": auth})
                after = memory_kib(pids[0])
                r["server_cpu_s"] = C.cpu_seconds(pids) - cpu0
                r["connections"] = conns
                # VmHWM is the process's peak since it started: a PROPFIND
                # that built its answer in memory would raise it.
                r["rss_kib"], r["hwm_kib_before"], r["hwm_kib_after"] = after[0], before[1], after[1]
                out[k].append(r)
                log(f"PROPFIND {k}: {r['rps']:.0f} req/s, p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms"
                    + (f", {r['non_2xx']} non-2xx" if r["non_2xx"] else ""))
                if r["non_2xx"] or not r["requests"]:
                    self.error(f"PROPFIND {k}: {r['non_2xx']} non-2xx answers of {r['requests']}")
        # One answer's size, for the record.
        for k, url, depth, auth, _ in targets[:2]:
            r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
                                "-X", "PROPFIND", "-H", f"Depth: {depth}", "-H", f"Authorization: {auth}",
                                "--data-binary", PROPFIND_BODY, url], capture_output=True, text=True)
            self.results.setdefault("propfind_depth1_bytes", {})[k] = r.stdout
        self.results["wrk"]["propfind"] = out

    def tus_latency(self):
        """HEAD and small PATCHes on --wrk-connections uploads at once."""
        a = self.a
        conns = a.wrk_connections
        h = C.Http(self.pan.base, self.pan.token)
        made = []

        def create(n):
            """n new tus uploads (offset 0): each PATCH run gets its own, so no
            PATCH cut off at the end of the last run can still move an offset."""
            ids = []
            for _ in range(n):
                i = len(made)
                h.c.request("POST", "/tus/", headers={"Authorization": f"Bearer {self.pan.token}",
                                                       "Tus-Resumable": "1.0.0", "Upload-Length": str(LATENCY_UPLOAD),
                                                       "Upload-Metadata": "filename " + base64.b64encode(
                                                           f"lat-{i}.bin".encode()).decode()})
                r = h.c.getresponse()
                r.read()
                if r.status != 201:
                    raise BenchError(f"POST /tus/: HTTP {r.status}")
                ids.append(r.getheader("Location").rsplit("/", 1)[1])
                made.append(ids[-1])
            return ids

        ids = create(conns)

        script = os.path.join(self.work, "tus.lua")
        with open(script, "w") as f:
            f.write(TUS_LUA)
        env = {"TUS_IDS": ",".join(ids), "TUS_AUTH": f"Bearer {self.pan.token}", "TUS_PATH": "/tus/",
               "PATCH_BYTES": str(a.patch_kib * 1024)}
        nginx_names = ",".join(f"p{i}" for i in range(conns))
        # The reference HEAD: an empty static file (pan's HEAD has no body either).
        open(os.path.join(self.nginx.www, "head.bin"), "wb").close()
        auth = [f"Authorization: Bearer {self.pan.token}", "Tus-Resumable: 1.0.0"]
        half = conns // 2
        out = {k: [] for k in ("head", "patch", "mixed_head", "mixed_patch", "nginx_head", "nginx_put")}

        def record(k, r, pids, cpu0):
            r["server_cpu_s"] = C.cpu_seconds(pids) - cpu0
            out[k].append(r)
            log(f"{k}: {r['rps']:.0f} req/s, p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms"
                + (f", {r['non_2xx']} non-2xx" if r["non_2xx"] else ""))
            if r["non_2xx"] or not r["requests"]:
                self.error(f"tus {k}: {r['non_2xx']} non-2xx answers of {r['requests']}: {r.get('bad_answers')}")

        for _ in range(a.runs):
            pan_pids, ng_pids = self.pan.pids(), self.nginx.pids()
            # HEAD: ab, every connection on the first upload.
            cpu0 = C.cpu_seconds(pan_pids)
            record("head", ab_head(f"{self.pan.base}/tus/{ids[0]}", conns, a.wrk_seconds, auth, self.work),
                   pan_pids, cpu0)
            # PATCH: wrk, one thread and connection per upload.
            cpu0 = C.cpu_seconds(pan_pids)
            fresh = create(conns)
            record("patch", wrk_run(self.pan.base, conns, a.wrk_seconds, script,
                                    dict(env, TUS_MODE="patch", TUS_IDS=",".join(fresh),
                                         TUS_OFFSETS=",".join(["0"] * conns)), threads=conns),
                   pan_pids, cpu0)
            # Both at once: half the connections HEAD, half PATCH (other uploads).
            e = dict(env, TUS_MODE="patch", TUS_IDS=",".join(create(conns - half)),
                     TUS_OFFSETS=",".join(["0"] * (conns - half)))
            cpu0 = C.cpu_seconds(pan_pids)
            done = {}
            th = threading.Thread(target=lambda: done.update(
                r=wrk_run(self.pan.base, conns - half, a.wrk_seconds, script, e, threads=conns - half)))
            th.start()
            try:
                rh = ab_head(f"{self.pan.base}/tus/{ids[0]}", half, a.wrk_seconds, auth, self.work)
            finally:
                th.join()
            if "r" not in done:
                raise BenchError("wrk (mixed PATCH) failed")
            record("mixed_head", rh, pan_pids, cpu0)
            record("mixed_patch", done["r"], pan_pids, cpu0)
            cpu0 = C.cpu_seconds(ng_pids)
            record("nginx_head", ab_head(f"{self.nginx.base}/head.bin", conns, a.wrk_seconds, [], self.work),
                   ng_pids, cpu0)
            cpu0 = C.cpu_seconds(ng_pids)
            record("nginx_put", wrk_run(self.nginx.base, conns, a.wrk_seconds, script,
                                        dict(env, TUS_MODE="put", TUS_IDS=nginx_names, TUS_OFFSETS="0",
                                             TUS_PATH="/dav/"), threads=conns),
                   ng_pids, cpu0)
        for i in made:
            h.c.request("DELETE", f"/tus/{i}", headers={"Authorization": f"Bearer {self.pan.token}",
                                                        "Tus-Resumable": "1.0.0"})
            h.c.getresponse().read()
        self.nginx.clear_dav()
        self.results["wrk"]["tus"] = out

    # -- the run

    def run(self):
        a = self.a
        t_start = now()
        self.work = tempfile.mkdtemp(prefix="pan-bench-protocols-", dir=a.work_dir)
        os.chmod(self.work, 0o755)
        try:
            need = 3 * a.size + 4 * a.runs * a.small_files * (a.small_kib[1] + 4) * 1024
            free = C.free_bytes(self.work)
            if free < need + a.disk_margin * GIB:
                raise BenchError(f"{free / GIB:.1f} GiB free under {self.work}, needs {need / GIB:.1f} GiB "
                                 f"+ {a.disk_margin} GiB margin; try a smaller --size or --small-files")
            log(f"work dir {self.work}; writing {a.size // MIB} MiB")
            self.write_big()
            self.nginx = C.Nginx(self.work)
            self.pan = self.start_pan()
            self.serve_password = os.urandom(16).hex()
            self.serve = RcloneServe(self.work, self.user, self.serve_password)
            self.renv = self.rclone_env()
            for run in range(a.runs):
                if not a.skip_tus:
                    log(f"run {run + 1} of {a.runs}: tus")
                    self.nginx_put()
                    self.tus("Infinity", "one_patch")
                    self.tus(str(a.tus_chunk * MIB), "chunked")
                    self.curl_tus()
                    if not a.no_cli:
                        self.pan_put()
                    self.pan.check_alive()
                log(f"run {run + 1} of {a.runs}: WebDAV")
                self.rclone_big("base", "rclone", run)
                self.rclone_big("pan", "pan", run)
                if a.small_files:
                    src = self.small_dir(run, a.small_files)
                    self.rclone_small("base", "rclone", src, run)
                    self.rclone_small("pan", "pan", src, run)
                    self.check_small(run)
                    shutil.rmtree(src)
                self.pan.check_alive()
            if a.paced_files:
                log(f"{a.paced_files} small files with rclone's default pacer")
                src = self.small_dir("paced", a.paced_files)
                self.rclone_small("base", "rclone", src, 0, paced=True)
                self.rclone_small("pan", "pan", src, 0, paced=True)
                shutil.rmtree(src)
            if a.small_files:
                log("PROPFIND with wrk")
                self.propfind()
            if not a.skip_tus:
                log("tus HEAD and PATCH with wrk")
                self.tus_latency()
            self.pan.check_alive()
        finally:
            self.results["seconds"] = now() - t_start
            for p in reversed(C.STARTED):
                C.stop(p)
            if a.keep:
                log(f"kept {self.work}")
            else:
                shutil.rmtree(self.work, ignore_errors=True)


# ---------------------------------------------------------------- report


def table(res, a):
    r = res["runs"]
    size = a.size
    lines = []
    g = lambda x: f"{x:.2f} GB/s"
    fps = lambda x: f"{x:.0f} files/s"
    ms = lambda x: f"{x:.2f} ms" if x < 10 else (f"{x:.1f} ms" if x < 100 else f"{x:.0f} ms")
    rps = lambda x: f"{x:.0f} req/s" if x >= 10 else f"{x:.1f} req/s"

    def thr(key):
        return [C.gbps(size, v) for v in r.get(key, [])]

    def ratio(x, y):
        x, y = median([v for v in x if v is not None]), median([v for v in y if v is not None])
        return x / y if x and y else None

    def row(fig, pan_vals, pan_f, base_txt, base_vals, base_f, rt, target):
        lines.append(f"| {fig} | {C.fmt_range(pan_vals, pan_f)} | {base_txt}"
                     f"{': ' + C.fmt_range(base_vals, base_f) if base_vals is not None else ''} | "
                     f"{'—' if rt is None else f'{rt:.2f}'} | {target} |")

    if not a.skip_tus:
        lines.append(f"\n### tus (issue 27): {size // MIB} MiB from disk, median (min–max) of {a.runs}; ratio: pan's "
                     f"GB/s ÷ the baseline's\n")
        lines.append("| figure | pan | baseline in the same run | ratio | target |")
        lines.append("|---|---|---|---|---|")
        ng = thr("nginx_put_s")
        one, chunked = thr("tus_one_patch_s"), thr("tus_chunked_s")
        row("tus-js-client, chunkSize Infinity (one PATCH), until committed", one, g,
            "nginx dav PUT of the file, one connection", ng, g, ratio(one, ng), "≥ 0.9")
        row(f"tus-js-client, chunkSize {a.tus_chunk} MiB, until committed", chunked, g, "nginx dav PUT", ng, g,
            ratio(chunked, ng), "≥ 0.9")
        serial = [p + s1 + s2 for p, s1, s2 in zip(r.get("nginx_put_s", []), r.get("openssl_sha1_s", []),
                                                    r.get("openssl_sha256_s", []))]
        sr = [C.gbps(size, v) for v in serial]
        row("tus-js-client, one PATCH, against the serial baseline", one, g,
            "nginx PUT, then `openssl dgst -sha1`, then `-sha256`", sr, g, ratio(one, sr), "— (bench/compare.py's end to end: ≥ 1.0)")
        cu = thr("curl_tus_s")
        row("tus, one PATCH sent by curl (the baseline's client), until committed", cu, g, "nginx dav PUT", ng, g,
            ratio(cu, ng), "— (pan's side alone)")
        row("tus by curl, against the serial baseline", cu, g, "nginx PUT → SHA-1 → SHA-256", sr, g, ratio(cu, sr), "—")
        if r.get("pan_put_s"):
            put = thr("pan_put_s")
            row("`pan put` (hashes, then 8 MiB chunks over 4 connections)", put, g, "nginx dav PUT", ng, g,
                ratio(put, ng), "— (for information)")
        gib = size / GIB
        cpu = lambda k: [v / gib for v in r.get(k, [])]
        cs = lambda x: f"{x:.2f} cpu-s"
        row("server CPU per GiB, tus one PATCH", cpu("tus_one_patch_cpu_s"), cs, "nginx PUT", cpu("nginx_put_cpu_s"), cs,
            ratio(cpu("tus_one_patch_cpu_s"), cpu("nginx_put_cpu_s")), "— (pan also hashes SHA-1 and SHA-256)")
        both = [n + a1 + a2 for n, a1, a2 in zip(cpu("nginx_put_cpu_s"), cpu("openssl_sha1_cpu_s"), cpu("openssl_sha256_cpu_s"))]
        row("… against nginx + openssl SHA-1 + SHA-256", cpu("tus_one_patch_cpu_s"), cs, "the serial baseline's CPU", both,
            cs, ratio(cpu("tus_one_patch_cpu_s"), both), "—")
        row("client CPU per GiB: tus-js-client (Node), one PATCH", cpu("tus_one_patch_client_cpu_s"), cs, "—", None, cs,
            None, "—")

        t = res["wrk"].get("tus")
        if t:
            lines.append(f"\n### tus HEAD and PATCH, {a.wrk_connections} connections (one upload each), wrk "
                         f"{a.wrk_seconds} s × {a.runs}; PATCH of {a.patch_kib} KiB; median (min–max); ratio: pan's "
                         f"latency ÷ the reference's (req/s: pan ÷ reference)\n")
            lines.append("| figure | pan | reference in the same run | ratio | target |")
            lines.append("|---|---|---|---|---|")
            half = a.wrk_connections // 2
            for k, ref, fig_txt, ref_txt in (
                    ("head", "nginx_head", f"HEAD, {a.wrk_connections} connections (ab)", "nginx HEAD of an empty static file"),
                    ("patch", "nginx_put", f"PATCH of {a.patch_kib} KiB, {a.wrk_connections} connections (wrk)",
                     f"nginx dav PUT of {a.patch_kib} KiB"),
                    ("mixed_head", "nginx_head", f"HEAD, {half} connections, while {half} PATCH", "nginx HEAD"),
                    ("mixed_patch", "nginx_put", f"PATCH, {half} connections, while {half} HEAD", "nginx PUT")):
                for fig, key, f in (("p50", "p50_ms", ms), ("p99", "p99_ms", ms), ("rate", "rps", rps)):
                    pv, bv = [x[key] for x in t[k]], [x[key] for x in t[ref]]
                    row(f"{fig_txt}: {fig}", pv, f, ref_txt, bv, f, ratio(pv, bv), "—")

    lines.append(f"\n### WebDAV (issue 26): rclone {rclone_version()} copy, median (min–max) of {a.runs}; ratio: "
                 f"pan's throughput ÷ the baseline's\n")
    lines.append("| figure | pan (vendor=nextcloud) | baseline: `rclone serve webdav` (vendor=rclone) | ratio | target |")
    lines.append("|---|---|---|---|---|")
    pb, bb = thr("rclone_big_pan_s"), thr("rclone_big_rclone_s")
    row(f"`rclone copy` of {size // MIB} MiB", pb, g, "rclone serve", bb, g, ratio(pb, bb), "≥ 0.9")
    if r.get("rclone_small_pan_s"):
        n = a.small_files
        ps = [n / v for v in r["rclone_small_pan_s"]]
        bs = [n / v for v in r["rclone_small_rclone_s"]]
        lo, hi = a.small_kib
        kib = f"{lo}–{hi} KiB" if lo != hi else f"{lo} KiB"
        row(f"`rclone copy` of {n:,} files of {kib} into one folder (`--webdav-pacer-min-sleep 0s`)", ps, fps,
            "rclone serve", bs, fps, ratio(ps, bs), "≥ 0.5")
        if r.get("rclone_paced_pan_s"):
            m = a.paced_files
            pp = [m / v for v in r["rclone_paced_pan_s"]]
            bp = [m / v for v in r["rclone_paced_rclone_s"]]
            row(f"the same, {m:,} files, rclone's default pacer (10 ms between calls), once", pp, fps,
                "rclone serve", bp, fps, ratio(pp, bp), "— (rclone-bound)")
        per = lambda k: [v / n * 1000 for v in r.get(k, [])]
        cms = lambda x: f"{x:.2f} cpu-ms"
        row("server CPU per small file", per("rclone_small_pan_server_cpu_s"), cms, "rclone serve",
            per("rclone_small_rclone_server_cpu_s"), cms,
            ratio(per("rclone_small_pan_server_cpu_s"), per("rclone_small_rclone_server_cpu_s")), "—")
    p = res["wrk"].get("propfind")
    if p:
        folder = f"Depth 1 of a {a.small_files:,}-entry folder"
        for depth, what, conns in (("depth1one", folder, 1), ("depth1", folder, a.propfind_connections),
                                   ("depth0", "Depth 0 of one file", a.wrk_connections)):
            if f"{depth}_pan" not in p:
                continue
            for fig, key, f in (("p50", "p50_ms", ms), ("p99", "p99_ms", ms), ("rate", "rps", rps)):
                pv, bv = [x[key] for x in p[f"{depth}_pan"]], [x[key] for x in p[f"{depth}_rclone"]]
                rt = ratio(pv, bv)
                target = "≤ 200 ms" if (depth, fig) == ("depth1one", "p99") else "—"
                row(f"PROPFIND {what}, {conns} connection{'s' if conns > 1 else ''}, {fig}", pv, f, "rclone serve",
                    bv, f, rt, target if fig != "rate" else "— (ratio: pan ÷ rclone)")
        # The api's memory over the Depth 1 runs: its peak (VmHWM) before
        # the first and after the last, and its RSS after.
        d1 = p.get("depth1one_pan", []) + p.get("depth1_pan", [])
        if d1 and "hwm_kib_before" in d1[0]:
            mib = lambda k: k / 1024
            lines.append(f"| the api's peak memory (VmHWM) across the Depth 1 runs | {mib(d1[0]['hwm_kib_before']):.0f} MiB "
                         f"before → {mib(max(x['hwm_kib_after'] for x in d1)):.0f} MiB after (RSS after: "
                         f"{mib(d1[-1]['rss_kib']):.0f} MiB) | — | — | flat |")
    return "\n".join(lines)


def rclone_version():
    try:
        return subprocess.run([RCLONE, "version"], capture_output=True, text=True).stdout.split()[1]
    except (OSError, IndexError):
        return "?"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=1024, help="MiB of the large file (a multiple of 8; default 1024)")
    p.add_argument("--runs", type=int, default=3, help="runs per figure (default 3)")
    p.add_argument("--tus-chunk", type=int, default=64, help="tus-js-client's chunkSize in MiB for the chunked "
                                                             "figure (default 64)")
    p.add_argument("--small-files", type=int, default=10000, help="small files per run (default 10000; --quick "
                                                                  "1000; 0 skips them and PROPFIND)")
    p.add_argument("--paced-files", type=int, default=1000,
                   help="small files copied once more each way with rclone's default pacer, for information "
                        "(default 1000; --quick 200; 0 skips)")
    p.add_argument("--small-kib", default="1-64",
                   help="KiB per small file: N, or LO-HI for sizes spread over that range (default 1-64, "
                        "as issue 26 asks)")
    p.add_argument("--skip-tus", action="store_true", help="only the WebDAV figures (and no `pan put`)")
    p.add_argument("--wrk-seconds", type=int, default=5, help="seconds per wrk run (default 5)")
    p.add_argument("--wrk-connections", type=int, default=64,
                   help="connections for tus HEAD/PATCH and PROPFIND Depth 0 (default 64)")
    p.add_argument("--propfind-connections", type=int, default=4,
                   help="connections for PROPFIND Depth 1 of the big folder (default 4)")
    p.add_argument("--patch-kib", type=int, default=4, help="KiB per small PATCH (default 4)")
    p.add_argument("--no-cli", action="store_true", help="skip `pan put`")
    p.add_argument("--quick", action="store_true",
                   help="a quick check: --size 256 --runs 1 --small-files 1000 --paced-files 200 --wrk-seconds 2")
    p.add_argument("--disk-margin", type=int, default=4, help="GiB left free at all times (default 4)")
    p.add_argument("--work-dir", default="/var/tmp", help="where the data goes (default /var/tmp)")
    p.add_argument("--out-dir", default=os.path.join(ROOT, "bench/results"))
    p.add_argument("--bin-dir", default=os.path.join(ROOT, "target/release"))
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    p.add_argument("--command", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    argv = sys.argv[1:]
    if a.quick:
        if "--size" not in argv:
            a.size = 256
        if "--runs" not in argv:
            a.runs = 1
        if "--small-files" not in argv:
            a.small_files = 1000
        if "--paced-files" not in argv:
            a.paced_files = 200
        if "--wrk-seconds" not in argv:
            a.wrk_seconds = 2
    lo, _, hi = a.small_kib.partition("-")
    try:
        a.small_kib = (int(lo), int(hi or lo))
    except ValueError:
        p.error("--small-kib is N or LO-HI (KiB)")
    if not 1 <= a.small_kib[0] <= a.small_kib[1]:
        p.error("--small-kib is N or LO-HI with 1 <= LO <= HI")
    if a.size % 8 or a.size < 16:
        p.error("--size must be a multiple of 8 MiB, at least 16")
    a.size *= MIB
    for exe in ("api", "pan"):
        if not os.access(os.path.join(a.bin_dir, exe), os.X_OK):
            p.error(f"{a.bin_dir}/{exe} is missing (bench/run builds it)")
    for tool in ("curl", "nginx", "wrk", "node", "openssl"):
        if not shutil.which(tool):
            p.error(f"{tool} is missing (scripts/deps bench installs it)")
    if not os.path.isdir(os.path.join(TUS_MODULES, "tus-js-client")):
        p.error("tus-js-client is missing (scripts/deps tus installs it)")
    if not os.access(RCLONE, os.X_OK):
        p.error(f"{RCLONE} is missing (scripts/deps dav installs it)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    b = Protocols(a)
    res = b.results
    res["date"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    res["command"] = a.command or " ".join(["bench/protocols.py"] + sys.argv[1:])
    res["machine"] = C.machine()
    res["machine"]["tools"]["node"] = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    res["machine"]["tools"]["rclone"] = rclone_version()
    res["git"] = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                                capture_output=True, text=True).stdout.strip()
    res["settings"] = {"size": a.size, "runs": a.runs, "tus_chunk_mib": a.tus_chunk, "small_files": a.small_files,
                       "paced_files": a.paced_files,
                       "small_kib": a.small_kib, "wrk_seconds": a.wrk_seconds, "wrk_connections": a.wrk_connections,
                       "propfind_connections": a.propfind_connections, "patch_kib": a.patch_kib}
    try:
        b.run()
    except BenchError as e:
        b.error(str(e))
    except KeyboardInterrupt:
        b.error("interrupted")
    md = table(res, a)
    os.makedirs(a.out_dir, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M")
    name = f"{stamp}-protocols" + ("-quick" if a.quick else "")
    head = [f"pan protocol benchmark (tus, WebDAV), embedded, {res['date']}, git {res['git']}",
            f"command: `{res['command']}`",
            f"machine: {res['machine']['cores']} cores ({res['machine']['cpu']}), "
            f"{res['machine']['memory_mib']} MiB, Linux {res['machine']['kernel']}; "
            f"load at start {' '.join(f'{x:.2f}' for x in res['machine']['load_at_start'])}",
            f"took {res['seconds'] / 60:.1f} min"]
    notes = [f"- skipped: {s}" for s in res["skipped"]] + [f"- ERROR: {e}" for e in res["errors"]]
    return C.write_results(a.out_dir, name, res, "\n".join(head) + "\n" + md, notes)


if __name__ == "__main__":
    sys.exit(main())
