"""A local stand-in for the Hugging Face Hub's HTTP API, for ``HF_ENDPOINT=http://127.0.0.1:PORT``.

It answers the requests that huggingface_hub's own ``snapshot_download`` makes
(repo info, tree listing, file resolve with HEAD and GET) from folders on disk,
and the Hub's error codes for a missing repo, revision or file. It runs on the
loopback address only.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse


class LocalHub:
    def __init__(self):
        self.repos: dict[str, dict[str, tuple[str, Path]]] = {}  # repo id -> revision -> (commit sha, folder)
        self.requests: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, repo_id: str, folder: Path, revisions: tuple[str, ...] = ("main",)) -> str:
        digest = hashlib.sha1()
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                digest.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
        sha = digest.hexdigest()
        for revision in (*revisions, sha):
            self.repos.setdefault(repo_id, {})[revision] = (sha, folder)
        return sha

    def __enter__(self) -> LocalHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._serve(body=False)

            def do_GET(self):
                self._serve(body=True)

            def _error(self, code: str, status: int = 404):
                payload = json.dumps({"error": code}).encode()
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _json(self, obj):
                payload = json.dumps(obj).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _lookup(self, repo_id: str, revision: str):
                if repo_id not in hub.repos:
                    self._error("RepoNotFound")
                    return None
                if revision not in hub.repos[repo_id]:
                    self._error("RevisionNotFound")
                    return None
                return hub.repos[repo_id][revision]

            def _serve(self, body: bool):
                path = unquote(urlparse(self.path).path)
                hub.requests.append(f"{self.command} {path}")
                parts = path.strip("/").split("/")
                if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] in ("revision", "tree"):
                    repo_id, kind, revision = "/".join(parts[2:4]), parts[4], parts[5]
                    found = self._lookup(repo_id, revision)
                    if found is None:
                        return
                    sha, folder = found
                    files = sorted(p for p in folder.rglob("*") if p.is_file())
                    if kind == "revision":
                        siblings = [{"rfilename": p.relative_to(folder).as_posix()} for p in files]
                        return self._json({"id": repo_id, "modelId": repo_id, "sha": sha, "siblings": siblings})
                    return self._json(
                        [
                            {
                                "type": "file",
                                "path": p.relative_to(folder).as_posix(),
                                "size": p.stat().st_size,
                                "oid": hashlib.sha1(p.read_bytes()).hexdigest(),
                            }
                            for p in files
                        ]
                    )
                if len(parts) >= 5 and parts[2] == "resolve":
                    repo_id, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                    found = self._lookup(repo_id, revision)
                    if found is None:
                        return
                    sha, folder = found
                    file = folder / filename
                    if not file.is_file():
                        return self._error("EntryNotFound")
                    data = file.read_bytes()
                    self.send_response(200)
                    self.send_header("X-Repo-Commit", sha)
                    self.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if body:
                        self.wfile.write(data)
                    return
                self._error("NotFound")

        return Handler
