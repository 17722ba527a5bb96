"""The sandbox alone (no static audit) refuses every hostile repository in tests/hostile/cases.py."""

from __future__ import annotations

import gc
import re
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile.cases import CASES, HostileCase

from hubguard.audit.policy import load_policy
from hubguard.errors import SandboxViolation
from hubguard.loader.snapshot import PinnedRevision, SourceRef, build_snapshot
from hubguard.sandbox import import_snapshot

POLICY = load_policy("default")


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A listening socket on 127.0.0.1; the test asserts that nothing connected to it."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    yield server
    server.close()


def _connection_arrived(server: socket.socket) -> bool:
    try:
        connection, _ = server.accept()
    except BlockingIOError:
        return False
    connection.close()
    return True


def _snapshot(case: HostileCase, marker: Path, port: int):
    files = {"modeling_x.py": case.source, **case.extra_files}
    contents = {
        path: text.replace("@MARKER@", str(marker)).replace("@PORT@", str(port)).encode()
        for path, text in files.items()
    }
    return build_snapshot(
        SourceRef("hub", f"hostile/{case.name.replace('_', '-')}"),
        PinnedRevision(None, "b" * 40),
        contents,
        code_entries=["modeling_x.py"],
    )


def _trigger(case: HostileCase, snapshot, events: list, monkeypatch: pytest.MonkeyPatch) -> None:
    code = import_snapshot(snapshot, POLICY, report=events)
    try:
        module = code.module("modeling_x.py")
        if case.trigger == "call":
            module.run() if case.source.count("def run(value)") == 0 else module.run(object())
        elif case.trigger == "init":
            module.Model()
        elif case.trigger == "eval":
            module.Model().eval()  # host code calls the model's train(False), as hubguard's loader does
        elif case.trigger == "model_call":
            module.Model()()
        elif case.trigger == "forward":
            module.Model().forward()
        elif case.trigger == "del":
            raised: list[BaseException] = []
            monkeypatch.setattr(sys, "unraisablehook", lambda info: raised.append(info.exc_value))
            instance = module.Model()
            del instance
            gc.collect()
            if raised:
                raise raised[0]
    finally:
        code.unload()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_case_refused(case: HostileCase, tmp_path: Path, listener: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    """The payload never runs and the user gets a SandboxViolation naming the rule and the repository."""
    marker = tmp_path / "marker"
    port = listener.getsockname()[1]
    snapshot = _snapshot(case, marker, port)
    events: list[dict] = []

    with pytest.raises(SandboxViolation, match=case.match) as raised:
        _trigger(case, snapshot, events, monkeypatch)

    assert not marker.exists()
    assert not _connection_arrived(listener)
    assert re.fullmatch(case.rule_id, raised.value.rule_id)
    assert raised.value.repo.startswith(f"hostile/{case.name.replace('_', '-')}@bbbbbbbbbbbb")
    assert raised.value.path in ("modeling_x.py", "torch.py")
    if case.trigger == "model_call" and "in a call of" in case.match:
        assert raised.value.line is None
        assert "in a call of the sandboxed model Model" in str(raised.value)
    else:
        assert raised.value.line >= 1
    assert "HUBGUARD_HOSTILE_MARKER" not in __import__("os").environ


def test_hostile_suite_size() -> None:
    """The suite keeps at least 40 distinct hostile repositories."""
    assert len({case.name for case in CASES}) == len(CASES)
    assert len(CASES) >= 40


DEL_DURING_IMPORT = """import pathlib


class Model:
    def __del__(self):
        pathlib.Path("/etc/passwd").read_bytes()


def run():
    for _ in range(20):
        model = Model()
        model.me = model
    model = None
    import @FRESH@
"""


def test_del_during_allowed_import_still_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A __del__ the garbage collector runs inside an allowed library import is still decided by the hook."""
    fresh = f"hubguard_fresh_{tmp_path.name.replace('-', '_')}"
    # The "library" collects garbage while it is imported, so the __del__ runs inside the import.
    (tmp_path / f"{fresh}.py").write_text("import gc\n\ngc.collect()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    marker = tmp_path / "marker"
    source = DEL_DURING_IMPORT.replace("@MARKER@", str(marker)).replace("@FRESH@", fresh)
    snapshot = build_snapshot(SourceRef("hub", "hostile/del-during-import"), PinnedRevision(None, "b" * 40), {"modeling_x.py": source.encode()}, code_entries=["modeling_x.py"])
    module = import_snapshot(snapshot, POLICY).module("modeling_x.py")
    raised: list[BaseException] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: raised.append(info.exc_value))
    gc.collect()
    gc.disable()  # keep the cycles alive until the library's own collection
    try:
        module.run()
    finally:
        gc.enable()

    assert fresh in sys.modules
    assert not marker.exists()
    assert raised
    assert all(isinstance(error, SandboxViolation) for error in raised)
    assert "reading '/etc/passwd', outside the snapshot and the Python installation, refused" in str(raised[0])


def test_hook_decides_sandboxed_code_inside_library_import() -> None:
    """Sandboxed code that runs while an allowed import is in progress is still decided by the hook."""
    from hubguard.sandbox import audithook

    source = b"import pathlib\n\ndef read_secret():\n    return pathlib.Path('/etc/passwd').read_bytes()\n"
    snapshot = build_snapshot(SourceRef("hub", "hostile/inside-import"), PinnedRevision(None, "b" * 40), {"modeling_x.py": source}, code_entries=["modeling_x.py"])
    module = import_snapshot(snapshot, POLICY).module("modeling_x.py")

    with audithook.library_import(sys._getframe()):
        with pytest.raises(SandboxViolation, match=r"reading '/etc/passwd', outside the snapshot") as raised:
            module.read_secret()

    assert raised.value.rule_id == "HG308"
    assert raised.value.line == 4
