"""pan's soak users (locust): each signs up, then lists, searches, uploads
small files (one request) and large ones (chunked; some resumed after a
dropped connection), downloads with Range, shares, deletes and restores.

Every request goes through one helper that retries what a load-balanced
client should retry (a cut connection, 502, 503, 504; bounded, with
backoff) and records, per route: latency, status, error code, and whether
a failure was followed by a successful retry. At the end each locust
process writes its records to `$SOAK_OUT/users-<pid>.json`: soak.py merges
them, checks the rules and verifies that every file the users hold
downloads byte-exact.
"""

import hashlib
import json
import os
import random
import time
import uuid

from locust import HttpUser, between, events, task

OUT = os.environ.get("SOAK_OUT", ".")
PASSWORD = "soak password 1"
RETRIES = 6

# Everything recorded by this process, dumped at test stop.
RECORD = {
    "requests": {},     # route -> {"ms": [...], "status": {code: n}, "codes": {code: n}}
    "retried_ok": 0,    # failures followed by a successful retry
    "gave_up": [],      # requests that failed every retry: (route, status, code, t)
    "unexpected": [],   # answers no rule allows (5xx other than 502/503/504, 503 without Retry-After)
    "abandoned_uploads": [],  # (t, why)
    "errors": [],       # every 5xx or cut connection: (t, route, status, code)
    "files": {},        # user -> {"token": ..., "files": {id: {"seed", "size", "sha256", "live"}}}
}


def content(seed, size):
    """The bytes of a soak file: the same for the same seed, cheap to make."""
    rng = random.Random(seed)
    block = rng.randbytes(min(size, 64 << 10) or 1)
    return (block * (size // len(block) + 1))[:size]


def note(route, status, ms, code=None):
    r = RECORD["requests"].setdefault(route, {"ms": [], "status": {}, "codes": {}})
    r["ms"].append(round(ms, 2))
    r["status"][str(status)] = r["status"].get(str(status), 0) + 1
    if code:
        r["codes"][code] = r["codes"].get(code, 0) + 1


class Gone(Exception):
    """A request failed every retry."""


class PanUser(HttpUser):
    wait_time = between(0.2, 1.5)

    def on_start(self):
        self.name = "soak" + uuid.uuid4().hex[:12]
        self.call("POST", "/usr/signup", "signup", json={"username": self.name, "password": PASSWORD}, ok=(201,))
        r = self.call("POST", "/usr/signin", "signin", json={"username": self.name, "password": PASSWORD}, ok=(200,))
        self.token = r.json()["token"]
        self.mine = RECORD["files"].setdefault(self.name, {"token": self.token, "files": {}})["files"]

    # -- the one way requests go ------------------------------------------

    def call(self, method, path, route, ok=(200,), retry_also=(), body_fn=None, ok_after_retry=(), **kw):
        """One request, retried on a cut connection, 502, 503 and 504 (and
        on `retry_also`), at most RETRIES times, and after a 429 as its
        Retry-After says for at most a minute (a server shedding load); the
        answer once its status is in `ok`, or in `ok_after_retry` once an
        earlier try failed (a retried delete finding its work done)."""
        headers = kw.pop("headers", {})
        if getattr(self, "token", None):
            headers["Authorization"] = f"Bearer {self.token}"
        failed = False
        attempt, shed_until = 0, time.monotonic() + 60
        while attempt < RETRIES:
            if body_fn is not None:
                kw["data"] = body_fn()
            t0 = time.monotonic()
            try:
                with self.client.request(method, path, name=route, headers=headers, catch_response=True,
                                         timeout=120, **kw) as r:
                    ms = (time.monotonic() - t0) * 1000
                    code = None
                    if r.status_code >= 400:
                        try:
                            code = r.json().get("code")
                        except ValueError:
                            code = None
                    note(route, r.status_code, ms, code)
                    if r.status_code >= 500:
                        RECORD["errors"].append((time.time(), route, r.status_code, code))
                    if r.status_code in ok or (failed and r.status_code in ok_after_retry):
                        r.success()
                        if failed:
                            RECORD["retried_ok"] += 1
                        return r
                    if r.status_code == 0:
                        # locust's answer for a connection that failed (it
                        # catches the error): a cut connection, retried.
                        r.failure("cut")
                        note(route, "cut", ms)
                        RECORD["errors"].append((time.time(), route, "cut", None))
                        failed = True
                        time.sleep(min(0.25 * 2 ** attempt, 4) + random.random() * 0.2)
                        attempt += 1
                        continue
                    retryable = r.status_code in (502, 504) or r.status_code in retry_also
                    if r.status_code == 429 and time.monotonic() < shed_until:
                        # A limit of pan's (bodies in flight): wait as told.
                        wait = float(r.headers.get("Retry-After", "1"))
                        r.failure("429")
                        time.sleep(min(wait, 10) + random.random() * 0.5)
                        failed = True
                        continue
                    if r.status_code == 503:
                        retryable = True
                        if "Retry-After" not in r.headers:
                            RECORD["unexpected"].append((route, 503, code, "no Retry-After", time.time()))
                    elif r.status_code >= 500 and r.status_code not in (502, 504):
                        RECORD["unexpected"].append((route, r.status_code, code, r.text[:200], time.time()))
                    r.failure(f"{r.status_code} {code}")
                    if not retryable:
                        if r.status_code < 500:  # a 5xx is noted above
                            RECORD["unexpected"].append((route, r.status_code, code, r.text[:200], time.time()))
                        raise Gone((route, r.status_code, code))
            except Gone:
                raise
            except Exception as e:  # a cut connection: requests' ConnectionError and kin
                note(route, "cut", (time.monotonic() - t0) * 1000)
                RECORD["errors"].append((time.time(), route, "cut", None))
                last = repr(e)[:120]
            failed = True
            time.sleep(min(0.25 * 2 ** attempt, 4) + random.random() * 0.2)
            attempt += 1
        RECORD["gave_up"].append((route, locals().get("last", "status"), time.time()))
        raise Gone((route, "gave up"))

    # -- what users do -----------------------------------------------------

    def live(self):
        return [i for i, f in self.mine.items() if f["live"]]

    @task(5)
    def list_root(self):
        try:
            self.call("GET", "/folder/list?limit=50&sort=name", "/folder/list")
        except Gone:
            pass

    @task(2)
    def search(self):
        try:
            self.call("GET", "/folder/search?q=soak&limit=20", "/folder/search")
        except Gone:
            pass

    @task(5)
    def upload_small(self):
        seed, size = random.getrandbits(48), random.randint(1 << 10, 64 << 10)
        data = content(seed, size)
        name = f"small-{seed}.bin"
        try:
            r = self.call("POST", "/file/upload", "/file/upload", ok=(200, 201),
                          files={"file": (name, data, "application/octet-stream")},
                          data={"on_conflict": "rename"})
        except Gone:
            return
        self.mine[r.json()["id"]] = {"seed": seed, "size": size, "sha256": hashlib.sha256(data).hexdigest(), "live": True}

    @task(1)
    def upload_large(self):
        seed, size = random.getrandbits(48), random.randint(6 << 20, 14 << 20)
        data = content(seed, size)
        sha1, sha256 = hashlib.sha1(data).hexdigest(), hashlib.sha256(data).hexdigest()
        init_body = {"filename": f"large-{seed}.bin", "filehash": sha1, "sha256": sha256, "filesize": size}
        try:
            init = self.call("POST", "/file/mupload/init", "/file/mupload/init", json=init_body).json()
            if init["status"] == "instant":
                return
            uid, csize, count = init["uploadID"], init["chunksize"], init["chunkcount"]
            order = list(range(count))
            random.shuffle(order)
            if random.random() < 0.3 and count > 1:
                # A dropped connection half-way through a chunk, then the
                # resume: init again finds the upload and says what it has.
                self.drop_mid_chunk(uid, order[0], data[order[0] * csize:(order[0] + 1) * csize])
                init = self.call("POST", "/file/mupload/init", "/file/mupload/init (resume)", json=init_body).json()
                if init.get("uploadID") != uid:
                    RECORD["abandoned_uploads"].append((time.time(), "the resume found another upload"))
                    return
                have = set(init.get("uploaded", []))
                order = [i for i in order if i not in have]
            for i in order:
                part = data[i * csize:(i + 1) * csize]
                self.call("POST", f"/file/mupload/uppart?uploadID={uid}&chkidx={i}", "/file/mupload/uppart",
                          headers={"Content-Type": "application/octet-stream"}, data=part)
            self.call("POST", f"/file/mupload/complete?uploadID={uid}", "/file/mupload/complete", ok=(200, 202))
            deadline = time.monotonic() + 120
            while True:
                st = self.call("GET", f"/file/mupload/status?uploadID={uid}", "/file/mupload/status").json()
                if st["state"] == "done":
                    break
                if st["state"] == "failed":
                    # complete said 202: a merge that then fails is pan's fault.
                    RECORD["unexpected"].append(("/file/mupload/status", 200, st.get("reason_code"),
                                                 f"an upload completed with 202 ended failed: {st.get('reason')}",
                                                 time.time()))
                    return
                if time.monotonic() > deadline:
                    RECORD["abandoned_uploads"].append((time.time(), f"not done within 120 s: {st['state']}"))
                    return
                time.sleep(0.5)
        except Gone as e:
            RECORD["abandoned_uploads"].append((time.time(), repr(e)[:160]))
            return
        self.mine[st["file"]["id"]] = {"seed": seed, "size": size, "sha256": sha256, "live": True}

    def drop_mid_chunk(self, uid, i, part):
        def half_then_cut():
            yield part[: len(part) // 2]
            raise ConnectionAbortedError("the soak drops this connection on purpose")
        t0 = time.monotonic()
        try:
            self.client.post(f"/file/mupload/uppart?uploadID={uid}&chkidx={i}", name="/file/mupload/uppart (cut)",
                             data=half_then_cut(), headers={"Authorization": f"Bearer {self.token}",
                                                            "Content-Type": "application/octet-stream"},
                             timeout=60)
        except Exception:
            pass
        note("/file/mupload/uppart (cut)", "dropped on purpose", (time.monotonic() - t0) * 1000)

    @task(5)
    def download_range(self):
        ids = self.live()
        if not ids:
            return
        fid = random.choice(ids)
        f = self.mine[fid]
        a = random.randint(0, f["size"] - 1)
        b = min(f["size"] - 1, a + random.randint(0, 256 << 10))
        try:
            r = self.call("GET", f"/file/download?id={fid}", "/file/download (Range)", ok=(206,),
                          headers={"Range": f"bytes={a}-{b}"})
        except Gone:
            return
        if r.content != content(f["seed"], f["size"])[a:b + 1]:
            RECORD["unexpected"].append(("/file/download (Range)", 206, None, "bytes differ", time.time()))

    @task(1)
    def share(self):
        ids = self.live()
        if not ids:
            return
        try:
            s = self.call("POST", "/share/create", "/share/create", ok=(201,), json={"id": random.choice(ids)}).json()
            self.call("GET", f"/public/share/info?link={s['link']}", "/public/share/info")
        except Gone:
            pass

    @task(1)
    def delete_and_restore(self):
        ids = self.live()
        if not ids:
            return
        fid = random.choice(ids)
        try:
            # A retried delete or restore may find its work done: 404 then.
            self.call("DELETE", f"/file/delete?id={fid}", "/file/delete", ok=(204,), ok_after_retry=(404,))
            self.mine[fid]["live"] = False
            r = self.call("POST", "/trash/restore", "/trash/restore", ok=(200,), ok_after_retry=(404,), json={"id": fid})
            self.mine[fid]["live"] = True
            if r.status_code == 404:
                # Not in the trash after all: then it was never deleted or is restored.
                self.mine[fid]["live"] = self.exists(fid)
        except Gone:
            self.mine[fid]["live"] = self.exists(fid)

    def exists(self, fid):
        try:
            r = self.call("GET", f"/file/download?id={fid}", "/file/download (check)", ok=(206, 404),
                          headers={"Range": "bytes=0-0"})
            return r.status_code == 206
        except Gone:
            return True


@events.test_stop.add_listener
def dump(environment, **_kw):
    path = os.path.join(OUT, f"users-{os.getpid()}.json")
    with open(path, "w") as f:
        json.dump(RECORD, f)
