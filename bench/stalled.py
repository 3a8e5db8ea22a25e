#!/usr/bin/env python3
"""How much memory stalled chunk uploads make the api hold.

Starts target/<profile>/api on the embedded default, opens N connections that
each send a chunk's head and all but one byte of its 8 MiB body, then stop
(the slow-loris of uploads), and reports the api's resident and anonymous
memory before and while they hang.

    bench/stalled.py [N] [PROFILE]      default: 100 connections, release
"""
import json, os, socket, subprocess, sys, tempfile, time, urllib.request

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100
PROFILE = sys.argv[2] if len(sys.argv) > 2 else "release"
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
work = tempfile.mkdtemp(prefix="pan-stalled-")
env = dict(os.environ, PAN_DATA_DIR=work, PAN_LISTEN="127.0.0.1:0", PAN_LOG="warn", PAN_USER_CHUNKS=str(N + 10))
api = subprocess.Popen([f"{root}/target/{PROFILE}/api"], env=env, stdout=subprocess.PIPE, text=True)
line = api.stdout.readline()
base = line.split("http://")[1].split("/")[0]

def call(method, path, body=None, token=None):
    req = urllib.request.Request(f"http://{base}{path}", method=method, data=json.dumps(body).encode() if body else None,
                                 headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})})
    return json.loads(urllib.request.urlopen(req).read() or b"null")

def mem():
    fields = dict(l.split(":", 1) for l in open(f"/proc/{api.pid}/status"))
    return {k: int(fields[k].split()[0]) // 1024 for k in ("VmRSS", "RssAnon")}

call("POST", "/usr/signup", {"username": "loris", "password": "slow loris"})
token = call("POST", "/usr/signin", {"username": "loris", "password": "slow loris"})["token"]
chunk = 8 << 20
init = call("POST", "/file/mupload/init", {"filename": "s.bin", "filehash": "0" * 40, "filesize": chunk * N}, token)
before = mem()
socks = []
for i in range(N):
    s = socket.create_connection(tuple(base.split(":")))
    s.sendall((f"POST /file/mupload/uppart?uploadID={init['uploadID']}&chkidx={i} HTTP/1.1\r\nHost: {base}\r\n"
               f"Authorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\n"
               f"Content-Length: {chunk}\r\n\r\n").encode())
    s.sendall(b"x" * (chunk - 1))
    socks.append(s)
time.sleep(5)
during = max((mem() for _ in range(10) if not time.sleep(0.5)), key=lambda m: m["VmRSS"])
print(f"{N} stalled 8 MiB chunks (all but the last byte sent): api VmRSS {before['VmRSS']} -> {during['VmRSS']} MiB, "
      f"RssAnon {before['RssAnon']} -> {during['RssAnon']} MiB "
      f"(+{(during['RssAnon'] - before['RssAnon']) / N:.2f} MiB anonymous per stalled chunk)")
for s in socks:
    s.close()
api.terminate()
api.wait()
subprocess.run(["rm", "-rf", work])
