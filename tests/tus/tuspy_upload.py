"""Uploads a file to pan's /tus/ with tuspy, checksumming every chunk
(Upload-Checksum: sha1): the first uploader stops half-way (as if the
process died), a second one resumes from the server's offset (HEAD).

Usage: python tuspy_upload.py BASE_URL AUTHORIZATION FILE NAME FOLDER
Prints {"url", "file_id", "resumed_from"} as JSON.
"""
import json
import os
import sys

from tusclient import client

base, authorization, path, name, folder = sys.argv[1:6]
tus = client.TusClient(base + "/tus/", headers={"Authorization": authorization})
size = os.path.getsize(path)
chunk = 256 * 1024

first = tus.uploader(path, chunk_size=chunk, upload_checksum=True, metadata={"filename": name, "folder": folder})
first.upload(stop_at=size // 2)

again = tus.uploader(path, chunk_size=chunk, upload_checksum=True, url=first.url)
resumed_from = again.offset
again.upload()
print(json.dumps({"url": first.url, "file_id": again.request.response_headers.get("pan-file-id"),
                  "resumed_from": resumed_from}))
