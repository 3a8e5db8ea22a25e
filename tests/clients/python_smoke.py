"""A client generated from openapi/openapi.json by openapi-python-client, used
against a live api: the spec is good enough for client generators.

Run by tests/clients/run.sh with the api's base URL as the only argument."""
import hashlib, io, sys, time
from pan_client import Client, AuthenticatedClient
from pan_client.api.users import signup, signin, user_info
from pan_client.api.uploads import upload_init, upload_part, upload_complete, upload_status, upload_prove
from pan_client.api.files import file_download, file_query
from pan_client.models import Credentials, NewAccount, InitRequest, ErrorBody, ProveRequest
from pan_client.types import File
base = sys.argv[1].rstrip("/")
c = Client(base_url=base)
assert signup.sync_detailed(client=c, body=NewAccount(username="py", password="password1")).status_code == 201
tok = signin.sync(client=c, body=Credentials(username="py", password="password1")).token
a = AuthenticatedClient(base_url=base, token=tok)
assert user_info.sync(client=a).username == "py"
data = bytes(range(256)) * 10
h = hashlib.sha1(data).hexdigest()
h256 = hashlib.sha256(data).hexdigest()
init = upload_init.sync(client=a, body=InitRequest(filename="p.bin", filehash=h, sha256=h256, filesize=len(data)))
assert init.status == "new" and init.chunkcount == 3, init
for i in range(init.chunkcount):
    r = upload_part.sync(client=a, body=File(payload=io.BytesIO(data[i*init.chunksize:(i+1)*init.chunksize])), upload_id=init.upload_id, chkidx=i)
    assert not isinstance(r, ErrorBody), r
assert upload_complete.sync_detailed(client=a, upload_id=init.upload_id).status_code == 202
deadline = time.time() + 60
while (s := upload_status.sync(client=a, upload_id=init.upload_id)).state == "merging":
    assert time.time() < deadline, "still merging after 60 s"
    time.sleep(0.1)
assert s.state == "done" and s.file.filename == "p.bin", s
bad = upload_status.sync(client=a, upload_id="0"*32)
assert isinstance(bad, ErrorBody) and bad.code == "UPLOAD_NOT_FOUND", bad
body = file_download.sync(client=a, filehash=h)
assert hashlib.sha1(body.payload.read()).hexdigest() == h
assert file_query.sync(client=a).total == 1
assert hashlib.sha1(file_download.sync(client=a, id=s.file.id).payload.read()).hexdigest() == h

# A second user holding the same bytes answers the challenge and gets the file at once.
assert signup.sync_detailed(client=c, body=NewAccount(username="py2", password="password2")).status_code == 201
b = AuthenticatedClient(base_url=base, token=signin.sync(client=c, body=Credentials(username="py2", password="password2")).token)
init = upload_init.sync(client=b, body=InitRequest(filename="q.bin", filehash=h, sha256=h256, filesize=len(data)))
assert init.status == "new" and init.challenge, init
proof = hashlib.sha256(bytes.fromhex(init.challenge.nonce))
for r in init.challenge.ranges:
    proof.update(data[r.first:r.last + 1])
done = upload_prove.sync(client=b, upload_id=init.upload_id, body=ProveRequest(proof=proof.hexdigest()))
assert done.status == "instant" and done.file.filename == "q.bin", done
print("generated Python client: signup, signin, info, init, uppart, complete, status, 404, download, query, prove: ok")

# Clients that send the whole body before reading the answer (urllib here)
# read the JSON error of a refused chunk, not a broken pipe.
import json, urllib.error, urllib.request
init = upload_init.sync(client=a, body=InitRequest(filename="r.bin", filehash="0" * 40, filesize=4096))
for who, upload, expect in [("too long", init.upload_id, (413, "CHUNK_TOO_LARGE")),
                            ("not yours", init.upload_id, (404, "UPLOAD_NOT_FOUND")),
                            ("unknown upload", "f" * 32, (404, "UPLOAD_NOT_FOUND"))]:
    token = tok if who != "not yours" else b.token
    req = urllib.request.Request(f"{base}/file/mupload/uppart?uploadID={upload}&chkidx=0", data=b"x" * (8 << 20),
                                 method="POST", headers={"Authorization": f"Bearer {token}",
                                                         "Content-Type": "application/octet-stream"})
    try:
        urllib.request.urlopen(req, timeout=30)
        raise AssertionError(f"{who}: accepted")
    except urllib.error.HTTPError as e:
        body = json.loads(e.read())
        assert (e.code, body["code"]) == expect, (who, e.code, body)
print("urllib: a refused 8 MiB chunk reads its JSON error (too long, not yours, unknown upload): ok")
