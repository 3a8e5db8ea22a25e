#!/usr/bin/env python3
"""pan's soak test with faults (issue 28, item 6).

Starts a whole fleet on loopback, privately: MariaDB, Redis (appendonly,
appendfsync always), a 3-node Garage cluster (replication factor 3; staging,
file store and backup), 3 api processes behind nginx (the shipped site file
deploy/nginx/pan.conf) and 3 workers. Then locust's users (soak/locustfile.py)
sign up, list, search, upload small and large files (some resumed after a
dropped connection), download with Range, share, delete and restore, while a
fault arrives every interval, in turn:

  kill-worker    SIGKILL a worker (started again 2 s later, as systemd would)
  kill-api       SIGKILL an api process (started again 2 s later)
  restart-redis  SIGKILL Redis and start it again on its append-only file
  pause-mariadb  SIGSTOP MariaDB for 5 s
  kill-garage    SIGKILL a Garage node (not the one pan's endpoint names)
                 and bring it back 20 s later

Afterwards every file the users hold is downloaded through nginx and
compared with what was uploaded, and `api admin audit --deep` runs. The
rules (exit 1 when one is broken): no 5xx but 503 with Retry-After and
502/504 from nginx, each failure followed by a successful retry (no request
gave up); nothing lost; the audit clean.

  soak/run                       10 minutes, 200 users (RELIABILITY.md's run)
  soak/run --short               2 minutes, 20 users, two faults (scripts/test)
  python3 soak/soak.py --help    every option
"""

import argparse
import glob
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAULTS = ["kill-api", "kill-worker", "restart-redis", "pause-mariadb", "kill-garage"]


def log(*a):
    print("[soak]", *a, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, check, secs=60):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise SystemExit(f"[soak] {what} did not happen within {secs} s")


def http_ok(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status < 500
    except urllib.error.HTTPError as e:
        return e.code < 500


class Proc:
    """A child process that can be killed and started again the same way."""

    def __init__(self, name, argv, env=None, log_path=None, cwd=None):
        self.name, self.argv, self.env, self.cwd = name, argv, env, cwd
        self.log_path = log_path
        self.p = None

    def start(self):
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.p = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                  cwd=self.cwd)
        return self

    def signal(self, sig):
        if self.p and self.p.poll() is None:
            self.p.send_signal(sig)

    def kill(self):
        if self.p and self.p.poll() is None:
            self.p.kill()
            self.p.wait()

    def stop(self):
        if self.p and self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


class Fleet:
    def __init__(self, work, bin_dir, apis, workers):
        self.work, self.bin_dir = work, bin_dir
        self.procs = []
        try:
            self.start(apis, workers)
        except BaseException:
            # A part that did not come up: stop the ones that did.
            self.stop()
            raise

    def start(self, apis, workers):
        self.start_mariadb()
        self.start_redis()
        self.start_garage()
        self.env = self.pan_env()
        self.api_ports = [free_port() for _ in range(apis)]
        self.apis = [self.pan("api", i, ["--no-worker"], {"PAN_LISTEN": f"127.0.0.1:{port}"})
                     for i, port in enumerate(self.api_ports)]
        for port in self.api_ports:
            wait_for(f"api on {port}", lambda port=port: http_ok(f"http://127.0.0.1:{port}/healthz"))
        self.workers = [self.pan("worker", i, [], {}) for i in range(workers)]
        self.start_nginx()

    # -- the parts ---------------------------------------------------------

    def start_mariadb(self):
        d = os.path.join(self.work, "mariadb")
        os.makedirs(d)
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={d}", "--user=root",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.db_port = free_port()
        self.mariadb = Proc("mariadb", ["mariadbd", "--no-defaults", f"--datadir={d}", f"--socket={d}/sock",
                                        f"--port={self.db_port}", "--bind-address=127.0.0.1", "--user=root",
                                        "--skip-grant-tables", "--innodb-buffer-pool-size=256M",
                                        "--max-connections=500"],
                            log_path=os.path.join(self.work, "mariadb.log")).start()
        self.procs.append(self.mariadb)
        wait_for("MariaDB", lambda: subprocess.run(
            ["mariadb", "-h127.0.0.1", f"-P{self.db_port}", "-uroot", "-e", "CREATE DATABASE IF NOT EXISTS pan"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0)

    def start_redis(self):
        d = os.path.join(self.work, "redis")
        os.makedirs(d)
        self.redis_port = free_port()
        self.redis = Proc("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(self.redis_port),
                                    "--dir", d, "--save", "", "--appendonly", "yes", "--appendfsync", "always"],
                          log_path=os.path.join(self.work, "redis.log")).start()
        self.procs.append(self.redis)
        self.wait_redis()

    def wait_redis(self):
        wait_for("Redis", lambda: subprocess.run(["redis-cli", "-p", str(self.redis_port), "ping"],
                                                 capture_output=True, text=True).stdout.strip() == "PONG")

    def start_garage(self):
        self.garage = []
        secret = os.urandom(32).hex()
        self.key_id, self.key_secret = "GK" + os.urandom(12).hex(), os.urandom(32).hex()
        bin_path = shutil.which("garage") or os.path.expanduser("~/.cargo/bin/garage")
        for i in range(3):
            d = os.path.join(self.work, f"garage{i}")
            os.makedirs(d)
            s3, rpc, admin = free_port(), free_port(), free_port()
            with open(os.path.join(d, "garage.toml"), "w") as f:
                f.write(f'''metadata_dir = "{d}/meta"
data_dir = "{d}/data"
db_engine = "sqlite"
replication_factor = 3
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
''')
            p = Proc(f"garage{i}", [bin_path, "-c", f"{d}/garage.toml", "server"],
                     env=dict(os.environ, RUST_LOG="warn"), log_path=f"{d}/garage.log").start()
            p.cli = lambda *args, d=d: self.garage_cli(bin_path, d, *args)
            p.endpoint = f"http://127.0.0.1:{s3}"
            self.garage.append(p)
            self.procs.append(p)
        ids = [g.cli("node", "id", "-q").strip() for g in self.garage]
        first = self.garage[0]
        for node in ids[1:]:
            first.cli("node", "connect", node)
        for i, node in enumerate(ids):
            first.cli("layout", "assign", "-z", f"dc{i + 1}", "-c", "10GB", node.split("@")[0])
        first.cli("layout", "apply", "--version", "1")
        first.cli("key", "import", "--yes", "-n", "pan", self.key_id, self.key_secret)
        first.cli("bucket", "create", "pan")
        first.cli("bucket", "allow", "--read", "--write", "--owner", "pan", "--key", "pan")
        for g in self.garage:
            wait_for("Garage's S3 API", lambda g=g: http_ok(g.endpoint))

    def garage_cli(self, bin_path, d, *args):
        out = None

        def run():
            nonlocal out
            r = subprocess.run([bin_path, "-c", f"{d}/garage.toml", *args], capture_output=True, text=True)
            out = r.stdout
            return r.returncode == 0
        wait_for(f"garage {' '.join(args)}", run, 30)
        return out

    def pan_env(self):
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR")}
        env.update({
            "PAN_DATA_DIR": os.path.join(self.work, "pan"),
            "DATABASE_URL": f"mysql://root@127.0.0.1:{self.db_port}/pan",
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}",
            "PAN_STAGING_URL": "s3://pan/staging",
            "PAN_STORE_URL": "s3://pan/files",
            "PAN_BACKUP_URL": "s3://pan/backup",
            "AWS_ENDPOINT": self.garage[0].endpoint,
            "AWS_ACCESS_KEY_ID": self.key_id,
            "AWS_SECRET_ACCESS_KEY": self.key_secret,
            "AWS_REGION": "garage",
            "AWS_ALLOW_HTTP": "true",
            "PAN_CHUNK_SIZE": str(5 << 20),
            # nginx is the proxy; the soak measures the fleet, not the
            # per-address limiter (every simulated user shares one address).
            "PAN_TRUSTED_PROXIES": "127.0.0.1",
            "PAN_SIGNUP_RATE": "0",
            "PAN_SIGNIN_RATE": "0",
            "PAN_SIGNIN_USER_RATE": "0",
            "PAN_SIGNUP": "open",
            "PAN_LOG": "info,sqlx=warn",
        })
        return env

    def pan(self, binary, i, args, extra):
        env = dict(self.env, **extra)
        p = Proc(f"{binary}{i}", [os.path.join(self.bin_dir, binary), *args], env=env,
                 log_path=os.path.join(self.work, f"{binary}{i}.log")).start()
        self.procs.append(p)
        return p

    def start_nginx(self):
        site = open(os.path.join(ROOT, "deploy/nginx/pan.conf")).read()
        first = re.search(r"^\s*server\s+\S+([^;]*);", site, flags=re.M)
        params = first.group(1) if first else ""
        servers = "".join(f"    server 127.0.0.1:{p}{params};\n" for p in self.api_ports)
        # The shipped site with this run's addresses: the upstream's servers
        # and the listening port; nothing else is changed.
        site = re.sub(r"(upstream\s+\S+\s*\{)(.*?)(\})",
                      lambda m: m.group(1) + "\n" + servers + "".join(
                          line + "\n" for line in m.group(2).splitlines()
                          if line.strip() and not line.strip().startswith("server ")) + m.group(3),
                      site, count=1, flags=re.S)
        self.nginx_port = free_port()
        site = re.sub(r"^(\s*)listen\s+[^;\n]+;", lambda m: f"{m.group(1)}listen 127.0.0.1:{self.nginx_port};", site, flags=re.M)
        site = re.sub(r"^\s*listen\s+\[::\][^;\n]*;\n", "", site, flags=re.M)
        d = os.path.join(self.work, "nginx")
        os.makedirs(os.path.join(d, "tmp"))
        with open(os.path.join(d, "site.conf"), "w") as f:
            f.write(site)
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(f"""user root;
worker_processes 2;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/tmp;
  proxy_temp_path {d}/tmp;
  include {d}/site.conf;
}}
""")
        self.nginx = Proc("nginx", ["nginx", "-c", f"{d}/nginx.conf", "-e", f"{d}/error.log"],
                          log_path=f"{d}/out.log").start()
        self.procs.append(self.nginx)
        self.base = f"http://127.0.0.1:{self.nginx_port}"
        wait_for("nginx", lambda: http_ok(self.base + "/healthz"))

    def stop(self):
        for p in reversed(self.procs):
            p.stop()


class Faults(threading.Thread):
    """One fault every `every` seconds, in turn, until stopped."""

    def __init__(self, fleet, names, every, start_after):
        super().__init__(daemon=True)
        self.fleet, self.names, self.every, self.start_after = fleet, names, every, start_after
        self.done = threading.Event()
        self.log = []  # (t, fault, what)

    def run(self):
        if self.done.wait(self.start_after):
            return
        for k, name in enumerate(self.names):
            t = time.time()
            what = getattr(self, name.replace("-", "_"))(k)
            self.log.append((t, name, what))
            log(f"fault {name}: {what}")
            if self.done.wait(max(0, self.every - (time.time() - t))):
                return

    def kill_worker(self, k):
        w = self.fleet.workers[k % len(self.fleet.workers)]
        w.kill()
        time.sleep(2)
        w.start()
        return f"{w.name} SIGKILLed, started again 2 s later"

    def kill_api(self, k):
        a = self.fleet.apis[k % len(self.fleet.apis)]
        a.kill()
        time.sleep(2)
        a.start()
        return f"{a.name} SIGKILLed, started again 2 s later"

    def restart_redis(self, _k):
        self.fleet.redis.kill()
        self.fleet.redis.start()
        self.fleet.wait_redis()
        return "Redis SIGKILLed and started again on its append-only file"

    def pause_mariadb(self, _k):
        self.fleet.mariadb.signal(signal.SIGSTOP)
        time.sleep(5)
        self.fleet.mariadb.signal(signal.SIGCONT)
        return "MariaDB paused (SIGSTOP) for 5 s"

    def kill_garage(self, _k):
        g = self.fleet.garage[2]
        g.kill()
        time.sleep(20)
        g.start()
        return "Garage node 3 SIGKILLed, started again 20 s later"


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else 0


def other_than_2xx(v):
    odd = {k: n for k, n in v["status"].items() if not k.startswith("2")}
    codes = ", ".join(f"{k} {n}" for k, n in sorted(v["codes"].items()))
    text = ", ".join(f"{k}: {n}" for k, n in sorted(odd.items()))
    return f"{text} ({codes})" if codes else (text or "none")


def merge_records(out_dir):
    merged = {"requests": {}, "retried_ok": 0, "gave_up": [], "unexpected": [], "abandoned_uploads": [],
              "errors": [], "files": {}}
    for path in glob.glob(os.path.join(out_dir, "users-*.json")):
        r = json.load(open(path))
        for route, v in r["requests"].items():
            m = merged["requests"].setdefault(route, {"ms": [], "status": {}, "codes": {}})
            m["ms"] += v["ms"]
            for key in ("status", "codes"):
                for k, n in v[key].items():
                    m[key][k] = m[key].get(k, 0) + n
        merged["retried_ok"] += r["retried_ok"]
        for key in ("gave_up", "unexpected", "abandoned_uploads", "errors"):
            merged[key] += r[key]
        merged["files"].update(r["files"])
    return merged


def verify(base, files):
    """Downloads every file the users hold; returns (checked, lost)."""
    checked, lost = 0, []
    for user, u in files.items():
        for fid, f in u["files"].items():
            if not f["live"]:
                continue
            req = urllib.request.Request(f"{base}/file/download?id={fid}",
                                         headers={"Authorization": f"Bearer {u['token']}"})
            for attempt in range(5):
                try:
                    with urllib.request.urlopen(req, timeout=120) as r:
                        got = hashlib.sha256(r.read()).hexdigest()
                    break
                except Exception as e:
                    got = repr(e)
                    time.sleep(1)
            checked += 1
            if got != f["sha256"]:
                lost.append((user, fid, got))
    return checked, lost


def report(args, fleet, faults, rec, secs, checked, lost, audit_ok, audit_out):
    total = sum(len(v["ms"]) for v in rec["requests"].values())
    statuses, codes = {}, {}
    for v in rec["requests"].values():
        for k, n in v["status"].items():
            statuses[k] = statuses.get(k, 0) + n
        for k, n in v["codes"].items():
            codes[k] = codes.get(k, 0) + n
    per_fault = []
    for i, (t, name, what) in enumerate(faults.log):
        end = faults.log[i + 1][0] if i + 1 < len(faults.log) else float("inf")
        errs = [e for e in rec["errors"] if t <= e[0] < end]
        abandoned = [a for a in rec["abandoned_uploads"] if t <= a[0] < end]
        kinds = {}
        for e in errs:
            kinds[str(e[2])] = kinds.get(str(e[2]), 0) + 1
        per_fault.append({"fault": name, "what": what, "errors": kinds, "unfinished_uploads": len(abandoned)})
    before_first = [a for a in rec["abandoned_uploads"] if not faults.log or a[0] < faults.log[0][0]]
    lines = [
        f"# Soak: {args.users} users, {secs / 60:.1f} minutes, faults every {args.every} s",
        "",
        f"- command: `{args.command}`",
        f"- requests: {total} ({total / secs:.1f}/s); retried after a failure and then succeeded: {rec['retried_ok']};"
        f" gave up after every retry: {len(rec['gave_up'])}",
        f"- answers no rule allows (5xx other than 502/503/504, 503 without Retry-After, a 4xx the client"
        f" did not expect, wrong bytes):"
        f" {len(rec['unexpected'])}",
        f"- files checked afterwards: {checked}, lost or different: {len(lost)}",
        f"- uploads users gave up (unfinished) before the first fault: {len(before_first)}",
        f"- audit (`api admin audit --deep`): {'clean' if audit_ok else 'NOT clean'}",
        "",
        "| status | count |", "|---|---|",
        *[f"| {k} | {n} |" for k, n in sorted(statuses.items())],
        "",
        "| error code | count |", "|---|---|",
        *[f"| {k} | {n} |" for k, n in sorted(codes.items())],
        "",
        "| fault | what | 5xx and cut connections until the next | uploads left unfinished |", "|---|---|---|---|",
        *[f"| {f['fault']} | {f['what']} | {f['errors'] or 'none'} | {f['unfinished_uploads']} |" for f in per_fault],
        "",
        "| route | requests | p50 ms | p95 ms | p99 ms | answers other than 2xx |", "|---|---|---|---|---|---|",
        *[f"| {route} | {len(v['ms'])} | {percentile(v['ms'], 50):.0f} | {percentile(v['ms'], 95):.0f} |"
          f" {percentile(v['ms'], 99):.0f} | {other_than_2xx(v)} |" for route, v in sorted(rec["requests"].items())],
        "",
    ]
    if rec["unexpected"]:
        lines += ["Unexpected answers (first 10):", "", *[f"- {u}" for u in rec["unexpected"][:10]], ""]
    if rec["gave_up"]:
        lines += ["Requests that gave up (first 10):", "", *[f"- {u}" for u in rec["gave_up"][:10]], ""]
    if lost:
        lines += ["Lost (first 10):", "", *[f"- {u}" for u in lost[:10]], ""]
    if not audit_ok:
        lines += ["Audit:", "", "```", audit_out[-3000:], "```", ""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--every", type=int, default=60, help="seconds between faults")
    ap.add_argument("--faults", default=",".join(FAULTS), help="comma-separated, in order (repeated to fill the run)")
    ap.add_argument("--short", action="store_true", help="2 minutes, 20 users, two faults (kill-api, restart-redis)")
    ap.add_argument("--bin-dir", default=os.path.join(ROOT, "target/release"))
    ap.add_argument("--locust", default="locust")
    ap.add_argument("--out", help="where the Markdown report goes (also printed)")
    ap.add_argument("--command", default="soak/run")
    args = ap.parse_args()
    if args.short:
        args.users, args.minutes, args.every, args.faults = 20, 2, 45, "kill-api,restart-redis"
    secs = int(args.minutes * 60)
    names = args.faults.split(",")
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        ap.error(f"unknown faults {unknown}; known: {FAULTS}")
    if not args.short:
        names = (names * (secs // args.every + 1))[: max(1, secs // args.every - 1)]
    work = os.path.join(ROOT, "target/soak", time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(work)
    log(f"work dir {work}")
    fleet = Fleet(work, args.bin_dir, apis=3, workers=3)
    ok = False
    try:
        faults = Faults(fleet, names, args.every, start_after=min(30, args.every / 2))
        out_dir = os.path.join(work, "users")
        os.makedirs(out_dir)
        log(f"{args.users} users for {secs} s through {fleet.base}; faults: {', '.join(names)}")
        faults.start()
        started = time.time()
        locust = subprocess.run(
            [args.locust, "-f", os.path.join(ROOT, "soak/locustfile.py"), "--headless", "-u", str(args.users),
             "-r", str(max(1, args.users // 10)), "-t", f"{secs}s", "--host", fleet.base, "--only-summary",
             "--stop-timeout", "60", "--loglevel", "WARNING"],
            env=dict(os.environ, SOAK_OUT=out_dir), stdout=open(os.path.join(work, "locust.log"), "w"),
            stderr=subprocess.STDOUT)
        elapsed = time.time() - started
        faults.done.set()
        faults.join()
        for p in fleet.procs:
            if p.p.poll() is not None:
                log(f"{p.name} is down after the run; starting it")
                p.start()
        log("checking every file the users hold")
        rec = merge_records(out_dir)
        checked, lost = verify(fleet.base, rec["files"])
        audit = subprocess.run([os.path.join(args.bin_dir, "api"), "admin", "audit", "--deep"], env=fleet.env,
                               capture_output=True, text=True)
        text = report(args, fleet, faults, rec, elapsed, checked, lost, audit.returncode == 0,
                      audit.stdout + audit.stderr)
        print(text)
        if args.out:
            with open(args.out, "w") as f:
                f.write(text)
        with open(os.path.join(work, "report.md"), "w") as f:
            f.write(text)
        ok = (locust.returncode in (0, 1) and not rec["unexpected"] and not rec["gave_up"] and not lost
              and audit.returncode == 0 and checked > 0)
        if not ok:
            log(f"rules broken (locust exit {locust.returncode}); logs in {work}")
    finally:
        fleet.stop()
    if ok:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    random.seed()
    main()
