"""End-to-end: the example published to a Hub served by olah, loaded by pinned commit through every entry point.

The example is saved the way an author publishes it (``register_for_auto_class`` then
``save_pretrained``), committed to a git repository that olah serves on 127.0.0.1, and
loaded with the real ``huggingface_hub`` client through hubguard's whole path: fetch and
verify, audit, sandboxed import, weights.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

import hubguard
from _olah import OlahServer, commit_files, git, olah_server  # noqa: F401  # olah_server is a fixture

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DIR = ROOT / "examples" / "custom_resnet"
EXAMPLE_PACKAGE = "hubguard_e2e_example"

pytestmark = pytest.mark.slow

# Appended to the example's modeling file: if the audit let it through, importing the
# module would create a marker file under the test's temporary folder.
HOSTILE_APPENDIX = """

import os as _os

_os.system("touch {marker}")
"""


def _import_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        EXAMPLE_PACKAGE, EXAMPLE_DIR / "__init__.py", submodule_search_locations=[str(EXAMPLE_DIR)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[EXAMPLE_PACKAGE] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def example() -> Iterator[ModuleType]:
    package = _import_example()
    package.ResnetConfig.register_for_auto_class()
    package.ResnetModelForImageClassification.register_for_auto_class("AutoModelForImageClassification")
    package.ResnetModel.register_for_auto_class("AutoModel")
    yield package
    for name in list(sys.modules):
        if name == EXAMPLE_PACKAGE or name.startswith(EXAMPLE_PACKAGE + "."):
            del sys.modules[name]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, olah_server: OlahServer) -> None:
    monkeypatch.setenv("HUBGUARD_CACHE", str(tmp_path / "hubguard-cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_ENDPOINT", olah_server.endpoint)


@pytest.fixture(scope="module")
def published(example: ModuleType, olah_server: OlahServer, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Publish the tiny example classifier as ``e2e/custom-resnet`` and return what a test needs."""
    torch.manual_seed(0)
    model = example.ResnetModelForImageClassification(example.tiny_config()).eval()
    saved = tmp_path_factory.mktemp("saved")
    model.save_pretrained(saved)
    repo = olah_server.create_repo("e2e/custom-resnet")
    files = {path.relative_to(saved).as_posix(): path.read_bytes() for path in saved.rglob("*") if path.is_file()}
    commit = commit_files(repo, files, message="Publish the tiny example")
    sample = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits = model(sample)["logits"]
    return {"repo_id": "e2e/custom-resnet", "commit": commit, "sample": sample, "logits": logits, "folder": repo}


def test_saved_repo_is_a_remote_code_repo(published: dict) -> None:
    config = json.loads((published["folder"] / "config.json").read_text())
    assert config["model_type"] == "custom-resnet"
    assert config["auto_map"]["AutoConfig"] == "configuration_resnet.ResnetConfig"
    assert config["auto_map"]["AutoModelForImageClassification"] == (
        "modeling_resnet.ResnetModelForImageClassification"
    )
    assert (published["folder"] / "modeling_resnet.py").read_bytes() == (EXAMPLE_DIR / "modeling_resnet.py").read_bytes()


def test_auto_classifier_loads_pinned_commit_with_equal_logits(published: dict) -> None:
    model = hubguard.AutoModelForImageClassification.from_pretrained(
        published["repo_id"], revision=published["commit"], trust_remote_code=True
    ).eval()
    with torch.no_grad():
        logits = model(published["sample"])["logits"]
    assert torch.equal(logits, published["logits"])
    assert type(model).__module__.startswith("hubguard_modules.")
    assert model.hubguard_report.verdict == "allow"


def test_auto_config_loads_remote_config_class(published: dict) -> None:
    config = hubguard.AutoConfig.from_pretrained(
        published["repo_id"], revision=published["commit"], trust_remote_code=True
    )
    assert type(config).__name__ == "ResnetConfig"
    assert type(config).__module__.startswith("hubguard_modules.")
    assert config.layers == [1, 1, 1, 1]
    assert config.block_type == "basic"


def test_from_config_builds_remote_model_from_same_commit(published: dict) -> None:
    config = hubguard.AutoConfig.from_pretrained(
        published["repo_id"], revision=published["commit"], trust_remote_code=True
    )
    model = hubguard.AutoModelForImageClassification.from_config(config, trust_remote_code=True)
    assert type(model).config_class is type(config)
    assert model.num_parameters() > 0


def test_remote_class_from_pretrained_loads_weights(published: dict) -> None:
    first = hubguard.AutoModelForImageClassification.from_pretrained(
        published["repo_id"], revision=published["commit"], trust_remote_code=True
    )
    again = type(first).from_pretrained(published["repo_id"], revision=published["commit"]).eval()
    with torch.no_grad():
        logits = again(published["sample"])["logits"]
    assert torch.equal(logits, published["logits"])


def test_feature_model_loads_through_auto_model(
    example: ModuleType, olah_server: OlahServer, tmp_path: Path
) -> None:
    torch.manual_seed(1)
    model = example.ResnetModel(example.tiny_config()).eval()
    saved = tmp_path / "features"
    model.save_pretrained(saved)
    repo = olah_server.create_repo("e2e/custom-resnet-features")
    files = {path.relative_to(saved).as_posix(): path.read_bytes() for path in saved.rglob("*") if path.is_file()}
    commit = commit_files(repo, files)
    loaded = hubguard.AutoModel.from_pretrained(
        "e2e/custom-resnet-features", revision=commit, trust_remote_code=True
    ).eval()
    sample = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(sample), model(sample))


def test_branch_name_refused_with_commit_to_pin(published: dict) -> None:
    with pytest.raises(hubguard.UnpinnedRevisionError, match=published["commit"]) as caught:
        hubguard.AutoModelForImageClassification.from_pretrained(
            published["repo_id"], revision="main", trust_remote_code=True
        )
    assert "main" in str(caught.value)


def test_without_trust_remote_code_nothing_runs(published: dict) -> None:
    with pytest.raises(hubguard.RemoteCodeNotTrustedError, match="trust_remote_code is not set") as caught:
        hubguard.AutoModelForImageClassification.from_pretrained(published["repo_id"], revision=published["commit"])
    assert f"hubguard audit e2e/custom-resnet --revision {published['commit']}" in caught.value.diagnostics()


def test_trust_none_refused_without_terminal(published: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", open(os.devnull))
    with pytest.raises(hubguard.RemoteCodeNotTrustedError, match="not confirmed"):
        hubguard.AutoModelForImageClassification.from_pretrained(
            published["repo_id"], revision=published["commit"], trust_remote_code=None
        )


def test_tampered_file_refused_by_lock(published: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from _olah import RewritingProxy

    lock_path = tmp_path / "hubguard.lock"
    hubguard.lock(published["repo_id"], revision=published["commit"]).write(lock_path)
    original = (published["folder"] / "modeling_resnet.py").read_bytes()
    proxy = RewritingProxy(os.environ["HF_ENDPOINT"])
    # Same length as the original, so only the content check can notice.
    tampered = original.replace(b'"""The', b'"""the', 1)
    assert tampered != original and len(tampered) == len(original)
    proxy.replace_body["modeling_resnet.py"] = tampered
    monkeypatch.setenv("HF_ENDPOINT", proxy.endpoint)
    monkeypatch.setenv("HUBGUARD_CACHE", str(tmp_path / "fresh-cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "fresh-hf-home"))
    with pytest.raises(hubguard.IntegrityError) as caught:
        hubguard.AutoModelForImageClassification.from_pretrained(
            published["repo_id"], revision=published["commit"], lock=lock_path, trust_remote_code=True
        )
    assert "modeling_resnet.py" in caught.value.diagnostics()


def test_tampered_folder_refused_by_lock(published: dict, tmp_path: Path) -> None:
    folder = tmp_path / "local-copy"
    folder.mkdir()
    for path in published["folder"].iterdir():
        if path.is_file():
            (folder / path.name).write_bytes(path.read_bytes())
    folder_lock = tmp_path / "folder.lock"
    hubguard.lock(str(folder)).write(folder_lock)
    config_file = folder / "configuration_resnet.py"
    config_file.write_text(config_file.read_text() + "\n# changed after locking\n")
    with pytest.raises(hubguard.IntegrityError, match="lock file expects") as caught:
        hubguard.AutoModelForImageClassification.from_pretrained(str(folder), lock=folder_lock, trust_remote_code=True)
    assert caught.value.path == "configuration_resnet.py"
    assert "configuration_resnet.py" in caught.value.diagnostics()


def test_hostile_variant_refused_by_policy(published: dict, olah_server: OlahServer, tmp_path: Path) -> None:
    marker = tmp_path / "hostile-marker"
    repo = olah_server.create_repo("e2e/custom-resnet-hostile")
    files = {path.name: path.read_bytes() for path in published["folder"].iterdir() if path.is_file()}
    files["modeling_resnet.py"] += HOSTILE_APPENDIX.format(marker=marker).encode()
    commit = commit_files(repo, files)
    with pytest.raises(hubguard.PolicyViolation, match="denied") as caught:
        hubguard.AutoModelForImageClassification.from_pretrained(
            "e2e/custom-resnet-hostile", revision=commit, trust_remote_code=True
        )
    rule_ids = {finding.rule_id for finding in caught.value.report.findings}
    assert rule_ids & {"HG201", "HG202", "HG203", "B605"}, rule_ids
    assert not marker.exists()


def test_pickle_weights_refused_by_default_policy(published: dict, olah_server: OlahServer, tmp_path: Path) -> None:
    repo = olah_server.create_repo("e2e/custom-resnet-pickle")
    files = {
        path.name: path.read_bytes()
        for path in published["folder"].iterdir()
        if path.is_file() and path.suffix != ".safetensors"
    }
    buffer = tmp_path / "pytorch_model.bin"
    torch.save({"weight": torch.zeros(2)}, buffer)
    files["pytorch_model.bin"] = buffer.read_bytes()
    commit = commit_files(repo, files)
    with pytest.raises(hubguard.HubguardError, match="pytorch_model.bin"):
        hubguard.AutoModelForImageClassification.from_pretrained(
            "e2e/custom-resnet-pickle", revision=commit, trust_remote_code=True
        )


def test_cli_load_prints_verdict_class_and_top5(published: dict, tmp_path: Path, olah_server: OlahServer) -> None:
    from PIL import Image

    image = tmp_path / "image.png"
    Image.new("RGB", (80, 60), color=(200, 30, 30)).save(image)
    env = {
        **os.environ,
        "HF_ENDPOINT": olah_server.endpoint,
        "HF_HOME": str(tmp_path / "hf-home"),
        "HUBGUARD_CACHE": str(tmp_path / "cache"),
    }
    completed = subprocess.run(
        [sys.executable, "-m", "hubguard", "load", published["repo_id"], "--revision", published["commit"],
         "--trust-remote-code", "--image", str(image), "--format", "json"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["verdict"] == "allow"
    assert result["class"].endswith("ResnetModelForImageClassification")
    assert result["parameters"] > 0
    assert len(result["top5"]) == 5
    assert {"audit", "total"} <= set(result["seconds"])


def test_cli_load_branch_exits_3(published: dict, tmp_path: Path, olah_server: OlahServer) -> None:
    env = {**os.environ, "HF_ENDPOINT": olah_server.endpoint, "HF_HOME": str(tmp_path / "hf"),
           "HUBGUARD_CACHE": str(tmp_path / "cache")}
    completed = subprocess.run(
        [sys.executable, "-m", "hubguard", "load", published["repo_id"], "--revision", "main", "--trust-remote-code"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert completed.returncode == 3
    assert published["commit"] in completed.stderr
    assert "Traceback" not in completed.stderr


def _run_in_terminal(arguments: list[str], answer: bytes, env: dict[str, str]) -> tuple[int, str]:
    """Run ``python -m hubguard ARGS`` on a pseudo-terminal, type ``answer`` at the prompt, return (exit code, screen)."""
    import pty
    import select
    import time

    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "hubguard", *arguments],
        stdin=terminal, stdout=terminal, stderr=terminal, env=env, close_fds=True,
    )
    os.close(terminal)
    screen = b""
    answered = False
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break
            if not chunk:
                break
            screen += chunk
            if not answered and b"[y/N]" in screen:
                os.write(controller, answer)
                answered = True
        elif process.poll() is not None:
            break
    process.wait(timeout=60)
    os.close(controller)
    return process.returncode, screen.decode(errors="replace")


@pytest.mark.parametrize(("answer", "expected_code"), [(b"y\n", 0), (b"n\n", 1)])
def test_cli_load_asks_on_terminal(
    published: dict, tmp_path: Path, olah_server: OlahServer, answer: bytes, expected_code: int
) -> None:
    env = {**os.environ, "HF_ENDPOINT": olah_server.endpoint, "HF_HOME": str(tmp_path / "hf"),
           "HUBGUARD_CACHE": str(tmp_path / "cache"), "NO_COLOR": "1", "COLUMNS": "200"}
    code, screen = _run_in_terminal(["load", published["repo_id"], "--revision", published["commit"]], answer, env)
    assert "hubguard audit: ALLOW" in screen
    assert "[y/N]" in screen
    assert code == expected_code, screen
    if expected_code == 0:
        assert "verdict:    allow" in screen
    else:
        assert "was not confirmed" in screen
        assert "Traceback" not in screen
