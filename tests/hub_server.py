"""A local stand-in for the Hugging Face Hub, for the download tests.

Two HTTP servers on 127.0.0.1 (random ports), started in threads:
  hub  answers {repo}/resolve/{revision}/{file} like huggingface.co:
       - LFS files (*.safetensors, *.bin): 302 to the CDN with X-Repo-Commit,
         X-Linked-Etag (sha256) and X-Linked-Size;
       - other files: 307 (relative, same host) to /api/resolve-cache/..., which
         answers 200 with ETag = git blob sha1, X-Repo-Commit, Content-Length;
       - 401 + X-Error-Code RepoNotFound for an unknown repo or a private one
         without the right "Authorization: Bearer" token; 404 RevisionNotFound;
         404 EntryNotFound (with X-Repo-Commit) for a missing file.
  cdn  serves blobs by sha256 with Range support (206 + Content-Range), and
       fault injection: `cut[file] = n` cuts the next n GETs of that file half
       way through the body; `corrupt` serves altered bytes for those files.
Every request is logged as (server, method, path, headers) in `log`.
"""
import hashlib
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def git_sha1(data):
    """The git blob id of `data` (the Hub's ETag for non-LFS files)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_lfs(name):
    return name.endswith((".safetensors", ".bin"))


class FakeHub:
    def __init__(self):
        self.repos = {}  # repo id -> {"refs": {name: commit}, "commits": {commit: {file: bytes}}, "token": str|None}
        self.blobs = {}  # sha256 -> (file name, bytes)
        self.log = []
        self.cut = {}
        self.corrupt = set()
        self.lock = threading.Lock()
        self.hub = self._serve(self._hub_handler)
        self.cdn = self._serve(self._cdn_handler)
        self.endpoint = f"http://127.0.0.1:{self.hub.server_address[1]}"
        self.cdn_url = f"http://127.0.0.1:{self.cdn.server_address[1]}"

    def _serve(self, handler_fn):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_HEAD(self):
                handler_fn(self, body=False)

            def do_GET(self):
                handler_fn(self, body=True)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a client that hangs up mid-body (the tests do) is not news

        Handler.fake = fake
        srv = Server(("127.0.0.1", 0), Handler)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        return srv

    def close(self):
        for s in (self.hub, self.cdn):
            s.shutdown()
            s.server_close()

    def reset(self):
        """Forgets the log and the fault injections (repos stay)."""
        with self.lock:
            self.log.clear()
            self.cut.clear()
            self.corrupt.clear()

    def add_commit(self, repo, files, ref="main", token=None):
        """Adds a commit holding `files` ({name: bytes}) to `repo`, points
        `ref` at it and returns its (deterministic) 40-hex id."""
        r = self.repos.setdefault(repo, {"refs": {}, "commits": {}, "token": token})
        h = hashlib.sha1(repo.encode())
        for name in sorted(files):
            h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
        commit = h.hexdigest()
        r["commits"][commit] = dict(files)
        if ref:
            r["refs"][ref] = commit
        for name, data in files.items():
            if is_lfs(name):
                self.blobs[hashlib.sha256(data).hexdigest()] = (name, data)
        return commit

    def requests(self, server=None, method=None):
        with self.lock:
            return [e for e in self.log if (server is None or e[0] == server)
                    and (method is None or e[1] == method)]

    # -- the hub ----------------------------------------------------------
    def _record(self, server, req):
        with self.lock:
            self.log.append((server, req.command, req.path, dict(req.headers)))

    @staticmethod
    def _reply(req, status, headers=(), body=b"", send_body=True):
        req.send_response(status)
        for k, v in headers:
            req.send_header(k, v)
        if not any(k.lower() == "content-length" for k, _ in headers):
            req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        if send_body and body:
            req.wfile.write(body)

    def _hub_handler(self, req, body):
        self._record("hub", req)
        path = urllib.parse.urlsplit(req.path).path
        if path.startswith("/api/resolve-cache/models/"):
            rest = path[len("/api/resolve-cache/models/"):].split("/")
            repo, commit, name = "/".join(rest[:-2]), rest[-2], urllib.parse.unquote(rest[-1])
            revision = commit
        elif "/resolve/" in path:
            repo, rest = path[1:].split("/resolve/", 1)
            rev_q, _, name_q = rest.partition("/")
            revision, name = urllib.parse.unquote(rev_q), urllib.parse.unquote(name_q)
        else:
            return self._reply(req, 404, [("X-Error-Code", "EntryNotFound")], send_body=body)
        r = self.repos.get(repo)
        auth = req.headers.get("Authorization")
        if r is None or (r["token"] and auth != f"Bearer {r['token']}"):
            return self._reply(req, 401, [("X-Error-Code", "RepoNotFound")],
                               b'{"error":"Repository not found"}', body)
        commit = revision if revision in r["commits"] else r["refs"].get(revision)
        if commit is None:
            return self._reply(req, 404, [("X-Error-Code", "RevisionNotFound")],
                               b'{"error":"Invalid rev id"}', body)
        files = r["commits"][commit]
        if name not in files:
            return self._reply(req, 404, [("X-Error-Code", "EntryNotFound"),
                                          ("X-Repo-Commit", commit)],
                               b'{"error":"Entry not found"}', body)
        data = files[name]
        if is_lfs(name):
            sha = hashlib.sha256(data).hexdigest()
            return self._reply(req, 302, [
                ("Location", f"{self.cdn_url}/cdn/{sha}?name={urllib.parse.quote(name)}"),
                ("X-Repo-Commit", commit), ("X-Linked-Etag", f'"{sha}"'),
                ("X-Linked-Size", str(len(data))), ("ETag", f'"{sha}"')], send_body=body)
        if not path.startswith("/api/resolve-cache/"):
            return self._reply(req, 307, [
                ("Location", f"/api/resolve-cache/models/{repo}/{commit}/{urllib.parse.quote(name)}"),
                ("X-Repo-Commit", commit)], send_body=body)
        return self._reply(req, 200, [("ETag", f'"{git_sha1(data)}"'), ("X-Repo-Commit", commit),
                                      ("Content-Length", str(len(data)))], data, body)

    # -- the CDN ----------------------------------------------------------
    def _cdn_handler(self, req, body):
        self._record("cdn", req)
        sha = urllib.parse.urlsplit(req.path).path.rsplit("/", 1)[-1]
        if sha not in self.blobs:
            return self._reply(req, 404, send_body=body)
        name, data = self.blobs[sha]
        if name in self.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        start = 0
        rng = req.headers.get("Range")
        if rng:
            start = int(rng.split("=", 1)[1].split("-", 1)[0])
            if start >= len(data):
                return self._reply(req, 416, [("Content-Range", f"bytes */{len(data)}")],
                                   send_body=body)
        piece = data[start:]
        headers = [("Content-Length", str(len(piece))), ("Accept-Ranges", "bytes"),
                   ("ETag", f'"{sha}"')]
        status = 200
        if rng:
            status = 206
            headers.append(("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}"))
        cut = False
        with self.lock:
            if body and self.cut.get(name, 0) > 0:
                self.cut[name] -= 1
                cut = True
        req.send_response(status)
        for k, v in headers:
            req.send_header(k, v)
        req.end_headers()
        if not body:
            return
        if cut:  # half the bytes, then drop the connection
            req.wfile.write(piece[: len(piece) // 2])
            req.wfile.flush()
            req.close_connection = True
            req.connection.shutdown(2)
            return
        req.wfile.write(piece)
