"""Run olah, a self-hosted Hugging Face mirror, on 127.0.0.1 as the Hub for tests.

olah in offline mode serves git repositories found under
``<mirrors>/models/<org>/<name>`` through the Hub's HTTP API, so the real
``huggingface_hub`` client downloads from it. The olah command is found through
``$HUBGUARD_OLAH_CLI``, else ``<repo>/.venv-olah/bin/olah-cli``; when it is missing the
tests are skipped, or failed when ``$CI`` is set.

Usage in a test module::

    from _olah import olah_server  # noqa: F401  # the session-wide server fixture

    def test_x(olah_server, monkeypatch):
        repo = olah_server.create_repo("acme/tiny")
        commit = commit_files(repo, {"config.json": "{}"})
        monkeypatch.setenv("HF_ENDPOINT", olah_server.endpoint)

Every module that imports the fixture gets the same server; it is stopped, by its
process id, when the test session ends.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
OLAH_CLI_ENV = "HUBGUARD_OLAH_CLI"
_START_TIMEOUT = 30.0
_GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "hubguard tests",
    "GIT_AUTHOR_EMAIL": "tests@hubguard.invalid",
    "GIT_COMMITTER_NAME": "hubguard tests",
    "GIT_COMMITTER_EMAIL": "tests@hubguard.invalid",
}


def find_olah_cli() -> str | None:
    """Return the olah command from ``$HUBGUARD_OLAH_CLI`` or ``.venv-olah``, or ``None``."""
    configured = os.environ.get(OLAH_CLI_ENV)
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    default = REPO_ROOT / ".venv-olah" / "bin" / "olah-cli"
    return str(default) if os.access(default, os.X_OK) else None


def require_olah_cli() -> str:
    """Return the olah command; skip the test when it is missing, or fail under ``$CI``."""
    cli = find_olah_cli()
    if cli is not None:
        return cli
    reason = (
        f"olah is not installed: set {OLAH_CLI_ENV} to an olah-cli executable, "
        f"or create {REPO_ROOT / '.venv-olah'} (python3 -m venv .venv-olah && .venv-olah/bin/pip install olah)"
    )
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def git(folder: Path, *args: str) -> str:
    """Run git in ``folder`` with a fixed identity and return its stripped output."""
    result = subprocess.run(
        ["git", "-C", str(folder), *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **_GIT_IDENTITY},
    )
    return result.stdout.strip()


def init_repo(folder: Path) -> Path:
    """Create an empty git repository with branch ``main`` at ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    git(folder, "init", "-q", "-b", "main")
    return folder


def commit_files(
    folder: Path, files: Mapping[str, str | bytes], *, message: str = "update", remove: tuple[str, ...] = ()
) -> str:
    """Write ``files`` (path -> text or bytes), delete ``remove``, commit everything and return the commit id."""
    for path, content in files.items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    for path in remove:
        (folder / path).unlink()
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "--allow-empty", "-m", message)
    return git(folder, "rev-parse", "HEAD")


@dataclass
class OlahServer:
    """A running olah process and the folder of git repositories it serves."""

    endpoint: str
    mirrors: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    repos: dict[str, Path] = field(default_factory=dict)

    def create_repo(self, repo_id: str) -> Path:
        """Create an empty model repository ``org/name`` and return its git folder."""
        return init_repo(self.mirrors / "models" / repo_id)

    def repo_folder(self, repo_id: str) -> Path:
        """Return the git folder that serves ``org/name``."""
        return self.mirrors / "models" / repo_id

    def is_running(self) -> bool:
        """Tell whether the olah process is still alive."""
        return self.process.poll() is None

    def stop(self) -> None:
        """Stop the olah process by its id and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_olah(root: Path, *, cli: str) -> OlahServer:
    """Start olah in offline mode on a free port of 127.0.0.1, serving ``root/mirrors``.

    Raises:
        RuntimeError: olah exited or did not answer within 30 s; the message holds its log.
    """
    port = free_port()
    mirrors = root / "mirrors"
    (mirrors / "models").mkdir(parents=True, exist_ok=True)
    config = root / "olah.toml"
    config.write_text(
        "[basic]\n"
        'host = "127.0.0.1"\n'
        f"port = {port}\n"
        f'repos-path = "{root / "olah-cache"}"\n'
        f'mirror-netloc = "127.0.0.1:{port}"\n'
        f'mirror-lfs-netloc = "127.0.0.1:{port}"\n'
        f'mirrors-path = ["{mirrors}"]\n'
        "\n[accessibility]\n"
        "offline = true\n",
        encoding="utf-8",
    )
    log_path = root / "olah.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([cli, "-c", str(config)], stdout=log, stderr=subprocess.STDOUT, cwd=root)
    server = OlahServer(endpoint=f"http://127.0.0.1:{port}", mirrors=mirrors, process=process, log_path=log_path)
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            urllib.request.urlopen(f"{server.endpoint}/api/models/hubguard/none/revision/main", timeout=1)
        except urllib.error.HTTPError:
            return server  # any HTTP answer means the server is up
        except OSError:
            time.sleep(0.1)
            continue
        return server
    server.stop()
    raise RuntimeError(f"olah did not start on port {port}; its log:\n{log_path.read_text(errors='replace')}")


_shared: OlahServer | None = None


@pytest.fixture(scope="session")
def olah_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OlahServer]:
    """Return the olah server shared by the whole test session, starting it on first use."""
    global _shared
    cli = require_olah_cli()
    if _shared is None or not _shared.is_running():
        _shared = start_olah(tmp_path_factory.mktemp("olah"), cli=cli)
    yield _shared
    _shared.stop()


__all__ = [
    "OlahServer",
    "RewritingProxy",
    "commit_files",
    "find_olah_cli",
    "free_port",
    "git",
    "init_repo",
    "olah_server",
    "require_olah_cli",
    "start_olah",
]


class RewritingProxy:
    """An HTTP proxy on 127.0.0.1 in front of olah that rewrites answers, to test distrust.

    ``report_commit[repo_id] = commit`` makes the revision endpoint and every file's
    ``X-Repo-Commit`` header report ``commit``, as olah 0.5.x does with the head commit
    when an older commit is requested. ``replace_body[path] = data`` serves ``data`` for
    every download of that repository path, keeping the other headers.
    """

    def __init__(self, upstream: str) -> None:
        import http.server
        import threading

        self.upstream = upstream.removeprefix("http://")
        self.report_commit: dict[str, str] = {}
        self.replace_body: dict[str, bytes] = {}
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802  # name fixed by BaseHTTPRequestHandler
                proxy._forward(self, "GET")

            def do_HEAD(self) -> None:  # noqa: N802  # name fixed by BaseHTTPRequestHandler
                proxy._forward(self, "HEAD")

            def do_POST(self) -> None:  # noqa: N802  # name fixed by BaseHTTPRequestHandler
                proxy._forward(self, "POST")

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002  # signature fixed
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _forward(self, handler: Any, method: str) -> None:
        import http.client
        import json
        import re

        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        dropped = {"host", "connection", "accept-encoding"}
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in dropped}
        connection = http.client.HTTPConnection(self.upstream, timeout=30)
        connection.request(method, handler.path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        connection.close()
        out_headers = [(k, v) for k, v in response.getheaders() if k.lower() not in {"transfer-encoding", "connection"}]

        revision = re.match(r"^/api/models/([^/]+/[^/]+)/revision/", handler.path)
        resolve = re.match(r"^/([^/]+/[^/]+)/resolve/[^/]+/([^?]+)", handler.path)
        repo_id = (revision or resolve).group(1) if (revision or resolve) else None
        commit = self.report_commit.get(repo_id) if repo_id else None
        if commit and revision and response.status == 200:
            document = json.loads(data)
            document["sha"] = commit
            data = json.dumps(document).encode()
        if commit and resolve:
            out_headers = [(k, commit if k.lower() == "x-repo-commit" else v) for k, v in out_headers]
        if resolve and resolve.group(2) in self.replace_body and response.status == 200 and method == "GET":
            data = self.replace_body[resolve.group(2)]
        if method != "HEAD":
            out_headers = [(k, str(len(data)) if k.lower() == "content-length" else v) for k, v in out_headers]
        handler.send_response(response.status)
        for key, value in out_headers:
            handler.send_header(key, value)
        handler.send_header("Connection", "close")
        handler.end_headers()
        if method != "HEAD":
            handler.wfile.write(data)

    def close(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()
