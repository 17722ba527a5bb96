"""The ``hubguard demo`` walk-through: the main job on the bundled example, with no network.

Steps:

1. build the example model with random weights, ``register_for_auto_class`` and
   ``save_pretrained`` it, and commit the folder to a local git repository;
2. write a lock file for that commit and audit it;
3. load it by pinned commit through the sandbox and run a forward pass, checking the
   logits against the same module built directly;
4. load a tampered copy against the lock: refused;
5. load a hostile variant whose code would create a marker file: refused by the policy.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from hubguard.errors import HubguardError, OutputFileError

logger = logging.getLogger(__name__)

EXAMPLE_DIR = Path(__file__).resolve().parent.parent / "examples" / "custom_resnet"
EXAMPLE_PACKAGE = "hubguard_demo_example"
# The files the demo imports from an example folder.
EXAMPLE_FILES = ("__init__.py", "configuration_resnet.py", "modeling_resnet.py")

# Appended to the example's modeling file to make the hostile variant. If it ever ran, it
# would only create a marker file inside the demo's own work folder.
HOSTILE_PAYLOAD = '''

import subprocess as _subprocess


def _leave_marker(path):
    _subprocess.run(["touch", path], check=False)
'''


@dataclass
class StepResult:
    """One demo step: its title, whether it behaved as expected, and what it printed."""

    title: str
    expected: bool
    detail: str


def check_example_dir(example_dir: Path) -> None:
    """Refuse an example folder that lacks a file the demo imports, naming the folder and the files.

    Raises:
        HubguardError: ``example_dir`` is not a folder or lacks one of ``EXAMPLE_FILES``.
    """
    if example_dir.is_dir():
        missing = [name for name in EXAMPLE_FILES if not (example_dir / name).is_file()]
        if not missing:
            return
        problem = "lacks " + ", ".join(missing)
    else:
        problem = "is not a folder" if example_dir.exists() else "does not exist"
    if example_dir == EXAMPLE_DIR:
        raise HubguardError(
            f"the bundled example {example_dir} {problem}",
            hint="run the demo from a checkout of the hubguard repository, or pass --example DIR",
        )
    raise HubguardError(
        f"example folder {example_dir} {problem}",
        hint=f"pass a folder like examples/custom_resnet that holds {', '.join(EXAMPLE_FILES)}; its "
        "__init__.py defines tiny_config() and resnet50d_config(), modeling_resnet.py defines "
        "ResnetModelForImageClassification and configuration_resnet.py defines ResnetConfig",
    )


def prepare_work_dir(work_dir: Path) -> None:
    """Create ``work_dir``, which must not exist yet or be an empty folder.

    A folder from an earlier run is refused rather than reused: its repositories would
    make ``git commit`` find nothing to commit, and its lock files would be stale.

    Raises:
        HubguardError: ``work_dir`` is a file or a folder that is not empty.
        OutputFileError: the folder cannot be created.
    """
    hint = "pass a folder that does not exist yet or is empty; the demo builds fresh repositories in it"
    if work_dir.exists() and not work_dir.is_dir():
        raise HubguardError(f"demo work folder {work_dir} is a file, not a folder", hint=hint)
    if work_dir.is_dir() and any(work_dir.iterdir()):
        raise HubguardError(f"demo work folder {work_dir} is not empty", hint=hint)
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputFileError(f"cannot create the demo work folder {work_dir}: {error}", hint=hint) from error


def _import_example(example_dir: Path) -> Any:
    """Import the example folder as a package under a private name.

    This is the author's side of the workflow: the example's code is trusted and imported
    directly, not through the sandbox.
    """
    spec = importlib.util.spec_from_file_location(
        EXAMPLE_PACKAGE, example_dir / "__init__.py", submodule_search_locations=[str(example_dir)]
    )
    if spec is None or spec.loader is None:
        raise HubguardError(f"cannot import the example from {example_dir}", hint="pass --example DIR")
    module = importlib.util.module_from_spec(spec)
    sys.modules[EXAMPLE_PACKAGE] = module
    try:
        spec.loader.exec_module(module)
        for name in ("configuration_resnet", "modeling_resnet"):
            importlib.import_module(f"{EXAMPLE_PACKAGE}.{name}")
    except Exception as error:  # the author's own code: any failure is reported, with its cause
        for name in [name for name in sys.modules if name.partition(".")[0] == EXAMPLE_PACKAGE]:
            del sys.modules[name]
        raise HubguardError(
            f"importing the example from {example_dir} failed: {type(error).__name__}: {error}",
            hint="fix the example's code; run with -vv to see the traceback",
        ) from error
    for name in ("tiny_config", "resnet50d_config"):
        if not callable(getattr(module, name, None)):
            raise HubguardError(
                f"the example's {example_dir / '__init__.py'} does not define {name}()",
                hint="define tiny_config() and resnet50d_config() returning the example's config",
            )
    return module


def _git(folder: Path, *arguments: str) -> str:
    """Run git in ``folder`` and return its output; a failure is a HubguardError with git's own message."""
    try:
        completed = subprocess.run(
            ["git", "-C", str(folder), *arguments],
            check=True,
            capture_output=True,
            text=True,
            env={"GIT_AUTHOR_NAME": "hubguard demo", "GIT_AUTHOR_EMAIL": "demo@localhost",
                 "GIT_COMMITTER_NAME": "hubguard demo", "GIT_COMMITTER_EMAIL": "demo@localhost",
                 "PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(folder)},
        )
    except FileNotFoundError as error:
        raise HubguardError("the demo needs git, which is not installed", hint="install git and run the demo again") from error
    except subprocess.CalledProcessError as error:
        output = (error.stderr or error.stdout or "").strip()
        raise HubguardError(
            f"git {' '.join(arguments)} failed in {folder}: {output or f'exit status {error.returncode}'}",
            hint="run the demo with a fresh --work-dir",
        ) from error
    return completed.stdout.strip()


def _commit_folder(folder: Path) -> str:
    _git(folder, "init", "-q", "-b", "main")
    _git(folder, "add", "-A")
    _git(folder, "commit", "-q", "-m", "Publish the example model")
    return _git(folder, "rev-parse", "HEAD")


def build_example_repo(work_dir: Path, *, small: bool, example_dir: Path = EXAMPLE_DIR) -> tuple[Path, str, Any, Any]:
    """Save the example with random weights into a git repository; return (folder, commit, model, input)."""
    import torch

    example = _import_example(example_dir)
    modeling = sys.modules[f"{EXAMPLE_PACKAGE}.modeling_resnet"]
    configuration = sys.modules[f"{EXAMPLE_PACKAGE}.configuration_resnet"]
    configuration.ResnetConfig.register_for_auto_class()
    modeling.ResnetModelForImageClassification.register_for_auto_class("AutoModelForImageClassification")
    config = example.tiny_config() if small else example.resnet50d_config()

    torch.manual_seed(0)
    model = modeling.ResnetModelForImageClassification(config).eval()
    repo = work_dir / "custom-resnet"
    model.save_pretrained(repo)
    commit = _commit_folder(repo)
    size = 64 if small else 224
    sample = torch.randn(1, config.input_channels, size, size)
    return repo, commit, model, sample


def _step(title: str, out: TextIO, action: Callable[[], tuple[bool, str]]) -> StepResult:
    print(f"\n== {title}", file=out)
    try:
        expected, detail = action()
    except HubguardError as error:
        expected, detail = False, f"unexpected error: {error.diagnostics()}"
    print(detail, file=out)
    print("   -> " + ("as expected" if expected else "NOT as expected"), file=out)
    return StepResult(title=title, expected=expected, detail=detail)


def run_demo(work_dir: Path | None = None, *, small: bool = False, out: TextIO = sys.stdout,
             example_dir: Path = EXAMPLE_DIR) -> list[StepResult]:
    """Run every demo step and return their results; nothing leaves ``work_dir``.

    ``work_dir`` must not exist yet or be empty; ``None`` uses a temporary folder, removed
    at the end. The example's code is imported directly, as the author's trusted code.

    Raises:
        HubguardError: the example folder or the work folder cannot be used.
    """
    check_example_dir(example_dir)
    owned = work_dir is None
    if work_dir is None:
        work_dir = Path(tempfile.mkdtemp(prefix="hubguard-demo-"))
    else:
        prepare_work_dir(work_dir)
    # Absolute, because the repository is named by a git+file:// URL built from this path.
    work_dir = work_dir.resolve()

    import torch

    import hubguard
    from hubguard.audit import render

    results: list[StepResult] = []
    try:
        repo, commit, reference_model, sample = build_example_repo(work_dir, small=small, example_dir=example_dir)
        source = f"git+file://{repo}"
        lock_path = work_dir / "hubguard.lock"
        print(f"example repository: {source}\npinned commit:      {commit}", file=out)

        def audit_step() -> tuple[bool, str]:
            hubguard.lock(source, revision=commit).write(lock_path)
            report = hubguard.audit(source, revision=commit, lock=lock_path)
            return report.verdict == "allow", render(report, "text")

        def load_step() -> tuple[bool, str]:
            model = hubguard.AutoModelForImageClassification.from_pretrained(
                source, revision=commit, lock=lock_path, trust_remote_code=True
            )
            with torch.no_grad():
                logits = model(sample)["logits"]
                expected = reference_model(sample)["logits"]
            same = torch.equal(logits, expected)
            detail = (
                f"class {type(model).__module__}.{type(model).__qualname__}\n"
                f"parameters {model.num_parameters():,}\n"
                f"logits equal to the directly built module: {same}"
            )
            return same, detail

        def tamper_step() -> tuple[bool, str]:
            tampered = work_dir / "tampered-copy"
            shutil.copytree(repo, tampered, ignore=shutil.ignore_patterns(".git"))
            folder_lock = work_dir / "folder.lock"
            hubguard.lock(str(tampered)).write(folder_lock)
            modeling_file = tampered / "modeling_resnet.py"
            modeling_file.write_text(modeling_file.read_text() + "\n# edited after the lock was written\n")
            try:
                hubguard.AutoModelForImageClassification.from_pretrained(
                    str(tampered), lock=folder_lock, trust_remote_code=True
                )
            except hubguard.IntegrityError as error:
                return True, error.diagnostics()
            return False, "the tampered copy loaded"

        def hostile_step() -> tuple[bool, str]:
            hostile = work_dir / "hostile-variant"
            shutil.copytree(repo, hostile, ignore=shutil.ignore_patterns(".git"))
            marker = work_dir / "hostile-marker"
            modeling_file = hostile / "modeling_resnet.py"
            payload = HOSTILE_PAYLOAD + f"\n\n_leave_marker({str(marker)!r})\n"
            modeling_file.write_text(modeling_file.read_text() + payload)
            try:
                hubguard.AutoModelForImageClassification.from_pretrained(str(hostile), trust_remote_code=True)
            except hubguard.PolicyViolation as error:
                text = error.diagnostics()
                if error.report is not None:
                    text += "\n" + render(error.report, "text")
                return not marker.exists(), text
            return False, "the hostile variant loaded"

        results.append(_step("audit the pinned commit", out, audit_step))
        results.append(_step("load through the sandbox and run a forward pass", out, load_step))
        results.append(_step("a tampered copy is refused by the lock", out, tamper_step))
        results.append(_step("a hostile variant is refused by the policy", out, hostile_step))
    finally:
        sys.modules.pop(EXAMPLE_PACKAGE, None)
        if owned:
            shutil.rmtree(work_dir, ignore_errors=True)
    passed = sum(result.expected for result in results)
    print(f"\ndemo finished: {passed}/{len(results)} steps behaved as expected", file=out)
    return results
