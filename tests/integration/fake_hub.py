#!/usr/bin/env python3
"""fake_hub.py: a Hugging Face hub and an Ollama registry on loopback, for the tests of
`shimmy pull` (tests/integration/it_pull.c, tests/clients/pull.test.mjs). Standard library only.

It serves the protocol subset shimmy speaks, as the real services answer it:
  Hugging Face (as huggingface_hub sees the hub):
    GET  /api/models/ORG/REPO[/revision/REV]  -> {"id", "sha", "siblings": [{"rfilename"}], "gated"}
    HEAD|GET /ORG/REPO/resolve/REV/FILE       -> 302 to /cdn/ORG/REPO/FILE (the CDN), with
         X-Repo-Commit, X-Linked-Etag (the sha256 of the LFS file), X-Linked-Size, ETag
    GET  /cdn/ORG/REPO/FILE                   -> the bytes, with Range (206 + Content-Range)
    unknown repository: 401 X-Error-Code RepositoryNotFound; gated repository without the token:
    401 X-Error-Code GatedRepo (403 with a wrong token), X-Error-Message the hub's words
  Ollama registry (the Docker registry v2 subset ollama pulls with):
    GET  /v2/NS/NAME/manifests/TAG  -> application/vnd.docker.distribution.manifest.v2+json
    GET  /v2/NS/NAME/blobs/DIGEST   -> 307 to /blobstore/HEX (the CDN), which serves with Range
    an unknown model: 404 {"errors":[{"code":"MANIFEST_UNKNOWN",...}]}; NS "private": 401

Repositories (the files are copies of the test models, or made by the project's tools):
  test/Stories-GGUF   stories-Q4_K_M.gguf (stories260K), stories-Q8_0.gguf (tiny-random),
                      stories-IQ4_XS.gguf (stories260K renamed by gguf_gen), README.md
  test/NoDefault-GGUF model-F16.gguf, model-Q8_0.gguf (tiny-random), model-Q4_0.gguf (stories260K)
  test/Split-GGUF     stories-split-0000K-of-00003.gguf (gguf_split_gen), mmproj-stories-f16.gguf
  test/Gated-GGUF     gated: needs "Authorization: Bearer hf_test_token"
  test/Slow-GGUF      stories-Q4_K_M.gguf served at --rate bytes/s (a slow link)
  test/Corrupt-GGUF   stories-Q4_K_M.gguf whose bytes on the CDN differ from its sha256
  Ollama: library/stories:latest (model, template, params layers and a config blob),
          library/slow:latest (the same, blobs at --rate bytes/s)

Every request is logged as one JSON line {"method", "path", "range", "auth"} in --log (the tests
read the Range header a resumed download sent from there). The port goes into --port-file once
the server listens.

  fake_hub.py --models DIR --tools DIR --work DIR --port-file FILE --log FILE [--rate N]
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "5d3c0b1e9a8f7e6d5c4b3a29180716253443f2e1"
TOKEN = "hf_test_token"
MANIFEST_MT = "application/vnd.docker.distribution.manifest.v2+json"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Store:
    def __init__(self, a):
        self.rate = a.rate
        w = a.work
        os.makedirs(w, exist_ok=True)
        stories = os.path.join(a.models, "stories260K.gguf")
        tiny = os.path.join(a.models, "llama-2-tiny-random.gguf")
        split = os.path.join(w, "stories-split")
        subprocess.run([os.path.join(a.tools, "gguf_split_gen"), stories, split, "3"],
                       check=True, stdout=subprocess.DEVNULL)
        mmproj = os.path.join(w, "mmproj.gguf")
        subprocess.run([os.path.join(a.tools, "gguf_gen"), mmproj, "--type", "mmproj", "--arch",
                        "clip"], check=True, stdout=subprocess.DEVNULL)
        iq4 = os.path.join(w, "stories-iq4.gguf")  # stories260K under another name: its own blob
        subprocess.run([os.path.join(a.tools, "gguf_gen"), iq4, "--copy-from", stories, "--name",
                        "stories-iq4"], check=True, stdout=subprocess.DEVNULL)
        readme = os.path.join(w, "README.md")
        with open(readme, "w") as f:
            f.write("# test repository\n")
        corrupt = os.path.join(w, "corrupt.gguf")
        shutil.copyfile(stories, corrupt)
        with open(corrupt, "r+b") as f:
            f.seek(600000)
            b = f.read(1)
            f.seek(600000)
            f.write(bytes([b[0] ^ 0xFF]))
        self.repos = {
            "test/Stories-GGUF": {"stories-Q4_K_M.gguf": stories, "stories-Q8_0.gguf": tiny,
                                  "stories-IQ4_XS.gguf": iq4, "README.md": readme},
            "test/NoDefault-GGUF": {"model-F16.gguf": tiny, "model-Q8_0.gguf": tiny,
                                    "model-Q4_0.gguf": stories},
            "test/Split-GGUF": {f"stories-split-0000{k}-of-00003.gguf":
                                f"{split}-0000{k}-of-00003.gguf" for k in (1, 2, 3)},
            "test/Gated-GGUF": {"stories-Q4_K_M.gguf": stories},
            "test/Slow-GGUF": {"stories-Q4_K_M.gguf": stories},
            "test/Corrupt-GGUF": {"stories-Q4_K_M.gguf": stories},
        }
        self.repos["test/Split-GGUF"]["mmproj-stories-f16.gguf"] = mmproj
        self.cdn_override = {("test/Corrupt-GGUF", "stories-Q4_K_M.gguf"): corrupt}
        self.sha = {}
        for files in self.repos.values():
            for p in files.values():
                if p not in self.sha:
                    self.sha[p] = sha256(p)
        self.blobs = {}
        self.manifests = {}
        for name in ("stories", "slow"):
            self.manifests[("library", name, "latest")] = self.ollama_model(w, stories, name)

    def blob(self, data_or_path):
        if isinstance(data_or_path, bytes):
            h = hashlib.sha256(data_or_path).hexdigest()
            self.blobs[h] = data_or_path
            return h, len(data_or_path)
        h = self.sha.get(data_or_path) or sha256(data_or_path)
        self.blobs[h] = data_or_path
        return h, os.path.getsize(data_or_path)

    def ollama_model(self, w, model, name):
        layers = []
        for mt, data in (("application/vnd.ollama.image.model", model),
                         ("application/vnd.ollama.image.template", b"{{ .Prompt }}"),
                         ("application/vnd.ollama.image.params",
                          json.dumps({"stop": ["</s>"], "temperature": 0.5}).encode())):
            h, n = self.blob(data)
            layers.append({"mediaType": mt, "digest": "sha256:" + h, "size": n})
        cfg = json.dumps({"model_format": "gguf", "model_family": "llama",
                          "model_families": ["llama"], "model_type": "292.8K",
                          "file_type": "F32", "architecture": "amd64", "os": "linux",
                          "rootfs": {"type": "layers",
                                     "diff_ids": [l["digest"] for l in layers]}}).encode()
        h, n = self.blob(cfg)
        return json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_MT,
                           "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                                      "digest": "sha256:" + h, "size": n},
                           "layers": layers}).encode(), name == "slow"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    store = None
    log_path = None
    log_lock = threading.Lock()

    def log_message(self, fmt, *args):
        pass

    def record(self):
        line = json.dumps({"method": self.command, "path": self.path,
                           "range": self.headers.get("Range"),
                           "auth": self.headers.get("Authorization")})
        with self.log_lock, open(self.log_path, "a") as f:
            f.write(line + "\n")

    def send(self, status, body=b"", ctype="application/json", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def hub_error(self, status, code, msg):
        self.send(status, json.dumps({"error": msg}).encode(),
                  headers=(("X-Error-Code", code), ("X-Error-Message", msg)))

    def serve_bytes(self, src, slow):
        if isinstance(src, bytes):
            data = src
        else:
            with open(src, "rb") as f:
                data = f.read()
        total, start, end, status = len(data), 0, len(data) - 1, 200
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            start = int(a)
            end = int(b) if b else total - 1
            if start >= total:
                self.send(416, b"", headers=(("Content-Range", f"bytes */{total}"),))
                return
            status = 206
        body = data[start:end + 1]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{total}")
        self.end_headers()
        if self.command == "HEAD":
            return
        step = 16384
        for i in range(0, len(body), step):
            self.wfile.write(body[i:i + step])
            if slow:
                self.wfile.flush()
                time.sleep(step / self.store.rate)

    def repo_of(self, parts):
        name = "/".join(parts[:2])
        return name, self.store.repos.get(name)

    def gated_refused(self, repo):
        if repo != "test/Gated-GGUF":
            return False
        auth = self.headers.get("Authorization")
        msg = (f"Access to model {repo} is restricted. You must have access to it and be "
               "authenticated to access it. Please log in.")
        if auth is None:
            self.hub_error(401, "GatedRepo", msg)
        elif auth != "Bearer " + TOKEN:
            self.hub_error(403, "GatedRepo", msg)
        else:
            return False
        return True

    def api_models(self, parts):
        repo, files = self.repo_of(parts)
        if files is None:
            self.hub_error(401, "RepositoryNotFound", "Repository not found")
            return
        body = {"id": repo, "modelId": repo, "sha": COMMIT, "private": False,
                "gated": "auto" if repo == "test/Gated-GGUF" else False,
                "siblings": [{"rfilename": f} for f in sorted(files)]}
        self.send(200, json.dumps(body).encode())

    def resolve(self, parts):
        # ORG/REPO/resolve/REV/FILE...
        repo, files = self.repo_of(parts)
        if files is None:
            self.hub_error(401, "RepositoryNotFound", "Repository not found")
            return
        rev, file = parts[3], "/".join(parts[4:])
        if self.gated_refused(repo):
            return
        if rev not in ("main", COMMIT) or file not in files:
            self.hub_error(404, "EntryNotFound", f"{file} does not exist on {rev}")
            return
        src = files[file]
        sha = self.store.sha[src]
        host = self.headers.get("Host")
        self.send(302, b"", headers=(
            ("Location", f"http://{host}/cdn/{repo}/{file}"),
            ("X-Repo-Commit", COMMIT), ("X-Linked-Etag", f'"{sha}"'),
            ("X-Linked-Size", str(os.path.getsize(src))), ("ETag", '"0123abcd"')))

    def cdn(self, parts):
        repo, files = self.repo_of(parts)
        file = "/".join(parts[2:])
        if files is None or file not in files:
            self.send(404, b"no such object", "text/plain")
            return
        src = self.store.cdn_override.get((repo, file), files[file])
        self.serve_bytes(src, repo == "test/Slow-GGUF")

    def registry(self, parts):
        # v2/NS/NAME/manifests/TAG | v2/NS/NAME/blobs/DIGEST
        if len(parts) != 5:
            self.send(404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"not found"}]}')
            return
        ns, name, kind, ref = parts[1:]
        if ns == "private":
            self.send(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                      headers=(("WWW-Authenticate", 'Bearer realm="https://example/token"'),))
            return
        if kind == "manifests":
            m = self.store.manifests.get((ns, name, ref))
            if m is None:
                self.send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}')
                return
            self.send(200, m[0], MANIFEST_MT)
            return
        h = ref[7:] if ref.startswith("sha256:") else ""
        if kind != "blobs" or h not in self.store.blobs:
            self.send(404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}')
            return
        host = self.headers.get("Host")
        slow = "1" if name == "slow" else "0"
        self.send(307, b"", headers=(("Location", f"http://{host}/blobstore/{h}?slow={slow}"),))

    def route(self):
        self.record()
        path, _, query = self.path.partition("?")
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            self.api_models(parts[2:4])
        elif parts[:1] == ["cdn"] and len(parts) >= 4:
            self.cdn(parts[1:])
        elif parts[:1] == ["blobstore"] and len(parts) == 2 and parts[1] in self.store.blobs:
            self.serve_bytes(self.store.blobs[parts[1]], query == "slow=1")
        elif parts[:1] == ["v2"]:
            self.registry(parts)
        elif len(parts) >= 5 and parts[2] == "resolve":
            self.resolve(parts)
        else:
            self.send(404, b'{"error":"not found"}')

    def do_GET(self):
        try:
            self.route()
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_HEAD = do_GET


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", required=True)
    p.add_argument("--tools", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--rate", type=int, default=200000)
    a = p.parse_args()
    Handler.store = Store(a)
    Handler.log_path = a.log
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, a.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
