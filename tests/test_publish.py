"""push_to_hub against a local HTTP server that stands in for the Hub's repo and commit endpoints."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from _fixtures_models import _private_cache_and_registry, example  # noqa: F401

from hubguard.errors import PublishError


@dataclass
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeHub:
    """Records every request; answers create-repo, create-branch, preupload and commit like the Hub.

    Header names are stored lowercased. Repository lookups (GET /api/models/...) get 404.
    """

    endpoint: str = ""
    requests: list[_Request] = field(default_factory=list)
    fail_create_with: int | None = None

    def paths(self) -> list[str]:
        return [f"{request.method} {request.path}" for request in self.requests]

    def commit_lines(self) -> list[dict]:
        [commit] = [request for request in self.requests if "/commit/" in request.path]
        return [json.loads(line) for line in commit.body.decode().splitlines()]

    def committed_files(self) -> dict[str, bytes]:
        return {
            line["value"]["path"]: base64.b64decode(line["value"]["content"])
            for line in self.commit_lines()
            if line["key"] == "file"
        }


def _handler(hub: FakeHub) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            hub.requests.append(_Request(self.command, self.path, headers, body))
            status, answer = 200, {}
            if self.command == "GET" and self.path.startswith("/api/models/"):
                status, answer = 404, {"error": "Repository not found"}
            elif self.path == "/api/repos/create":
                if hub.fail_create_with is not None:
                    status, answer = hub.fail_create_with, {"error": "You don't have the rights to create this model"}
                else:
                    request = json.loads(body)
                    answer = {"url": f"{hub.endpoint}/{request['organization']}/{request['name']}"}
            elif "/preupload/" in self.path:
                files = json.loads(body)["files"]
                answer = {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
            elif "/commit/" in self.path:
                oid = hashlib.sha1(body).hexdigest()
                answer = {"commitOid": oid, "commitUrl": f"{hub.endpoint}/acme/tiny/commit/{oid}"}
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _answer

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002  # the base class's name
            pass

    return Handler


@pytest.fixture
def fake_hub(monkeypatch) -> Iterator[FakeHub]:
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    hub = FakeHub()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    hub.endpoint = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield hub
    server.shutdown()
    server.server_close()


@pytest.fixture
def model(example):
    torch.manual_seed(0)
    return example.ResnetModelForImageClassification(example.tiny_config())


def test_push_sends_one_commit_with_all_files(fake_hub, model, tmp_path):
    commit = model.push_to_hub("acme/tiny", private=True, token="hf_test_token", endpoint=fake_hub.endpoint)
    assert fake_hub.paths() == [
        "POST /api/repos/create",
        "POST /api/models/acme/tiny/preupload/main",
        "POST /api/models/acme/tiny/commit/main",
    ]
    assert json.loads(fake_hub.requests[0].body) == {
        "name": "tiny",
        "organization": "acme",
        "type": "model",
        "visibility": "private",
    }

    model.save_pretrained(tmp_path / "local")
    expected = {path.name: path.read_bytes() for path in (tmp_path / "local").iterdir()}
    assert fake_hub.committed_files() == expected
    assert sorted(expected) == ["config.json", "configuration_resnet.py", "model.safetensors", "modeling_resnet.py"]
    assert commit == hashlib.sha1(fake_hub.requests[-1].body).hexdigest()


def test_push_sends_token_and_message(fake_hub, model):
    model.push_to_hub("acme/tiny", token="hf_test_token", endpoint=fake_hub.endpoint, commit_message="Add weights")
    for request in fake_hub.requests:
        assert request.headers["authorization"] == "Bearer hf_test_token"
    assert fake_hub.commit_lines()[0] == {"key": "header", "value": {"summary": "Add weights", "description": ""}}


def test_push_to_branch_creates_it(fake_hub, model):
    model.push_to_hub("acme/tiny", branch="dev", token="hf_test_token", endpoint=fake_hub.endpoint)
    assert fake_hub.paths() == [
        "POST /api/repos/create",
        "POST /api/models/acme/tiny/branch/dev",
        "POST /api/models/acme/tiny/preupload/dev",
        "POST /api/models/acme/tiny/commit/dev",
    ]


def test_config_push_sends_config_only(fake_hub, example):
    config = example.tiny_config()
    config.push_to_hub("acme/tiny", token="hf_test_token", endpoint=fake_hub.endpoint)
    assert sorted(fake_hub.committed_files()) == ["config.json", "configuration_resnet.py"]
    assert fake_hub.commit_lines()[0]["value"]["summary"] == "Upload config"


def test_refused_repo_creation_is_publish_error(fake_hub, model):
    fake_hub.fail_create_with = 403
    with pytest.raises(PublishError, match="push_to_hub to 'acme/tiny' failed to create the repository") as caught:
        model.push_to_hub("acme/tiny", token="hf_test_token", endpoint=fake_hub.endpoint)
    assert "write access" in caught.value.hint
    assert fake_hub.paths()[0] == "POST /api/repos/create"
    assert [path for path in fake_hub.paths() if "/commit/" in path or "/preupload/" in path] == []


def test_push_leaves_no_files_behind(fake_hub, model, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    model.push_to_hub("acme/tiny", token="hf_test_token", endpoint=fake_hub.endpoint)
    assert [path for path in Path(tmp_path).iterdir() if path.name.startswith("hubguard-push-")] == []


def test_unreachable_hub_is_publish_error(model):
    import socket

    with socket.socket() as probe:  # a port that was just free and has no listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.raises(
        PublishError, match=rf"^push_to_hub to 'acme/tiny' failed to create the repository at {endpoint}: ConnectError: "
    ) as caught:
        model.push_to_hub("acme/tiny", token="hf_test_token", endpoint=endpoint)
    assert "HF_ENDPOINT" in caught.value.hint
    assert "HF_TOKEN" in caught.value.hint
