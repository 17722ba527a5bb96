"""Command-line faults a first-time user hit: exact exit codes and messages, never a traceback."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hubguard.cli import main

CLEAN = "import torch\n"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBGUARD_CACHE", str(tmp_path / "cache"))


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Restore the ``hubguard`` and root loggers, which ``main`` configures, for the next test."""
    package, root = logging.getLogger("hubguard"), logging.getLogger()
    saved = (package.level, package.handlers[:], package.propagate, root.level)
    yield
    package.setLevel(saved[0])
    package.handlers[:] = saved[1]
    package.propagate = saved[2]
    root.setLevel(saved[3])


@pytest.fixture
def clean_repo(tmp_path: Path) -> Path:
    folder = tmp_path / "clean"
    folder.mkdir()
    (folder / "modeling_x.py").write_text(CLEAN)
    return folder


def _no_traceback(err: str) -> str:
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("position", ["before", "after"])
def test_verbose_flag_either_side(
    position: str, clean_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["-vv", "audit", str(clean_repo)] if position == "before" else ["audit", str(clean_repo), "-vv"]
    assert main(arguments) == 0
    err = _no_traceback(capsys.readouterr().err)
    assert logging.getLogger("hubguard").level == logging.DEBUG
    assert f"INFO hubguard.audit: audit of {clean_repo} with policy default: allow" in err


@pytest.mark.parametrize("position", ["before", "after"])
def test_quiet_flag_either_side(
    position: str, clean_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["-q", "audit", str(clean_repo)] if position == "before" else ["audit", str(clean_repo), "-q"]
    assert main(arguments) == 0
    assert logging.getLogger("hubguard").level == logging.ERROR
    assert "INFO" not in capsys.readouterr().err


def test_no_verbosity_flag_logs_warnings(clean_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", str(clean_repo)]) == 0
    assert logging.getLogger("hubguard").level == logging.WARNING
    assert capsys.readouterr().err == f"OK: {clean_repo}: allow (0 blocking of 0 findings)\n"


# --- output files: folders created, unwritable paths exit 2 --------------------------------


def test_lock_creates_the_output_folder(clean_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "missing" / "dir" / "x.lock"
    assert main(["lock", str(clean_repo), "-o", str(output)]) == 0
    assert json.loads(output.read_text())["repositories"][0]["source"] == str(clean_repo)
    assert capsys.readouterr().out == f"{output}\n"
    assert sorted(path.name for path in output.parent.iterdir()) == ["x.lock"]


@pytest.mark.parametrize(
    "command",
    [
        ["lock", "{source}", "-o", "{output}"],
        ["audit", "{source}", "-o", "{output}"],
        ["scan", "{source}", "--format", "json", "-o", "{output}"],
    ],
    ids=["lock", "audit", "scan"],
)
def test_unwritable_output_exits_2(
    command: list[str], clean_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    output = blocker / "out.txt"
    arguments = [part.format(source=clean_repo, output=output) for part in command]
    assert main(arguments) == 2
    err = _no_traceback(capsys.readouterr().err)
    assert "cannot write the " in err
    assert f" to {output}: " in err
    assert "fix: pass an output path in a folder you can write to" in err


def test_output_path_that_is_a_folder_exits_2(clean_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", str(clean_repo), "-o", str(tmp_path)]) == 2
    err = _no_traceback(capsys.readouterr().err)
    assert f"cannot write the text report to {tmp_path}: {tmp_path} is a directory" in err
    assert not any(path.name.endswith(".tmp") for path in tmp_path.iterdir())


def test_lock_write_raises_output_error(clean_repo: Path, tmp_path: Path) -> None:
    import hubguard

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(hubguard.OutputFileError, match=r"^cannot write the lock file to .*a-file/x\.lock: "):
        hubguard.lock(str(clean_repo)).write(blocker / "x.lock")


# --- demo: work folder and example folder checked before anything runs ---------------------


def test_demo_work_dir_that_is_a_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "work"
    work.write_text("")
    assert main(["demo", "--small", "--work-dir", str(work)]) == 2
    err = _no_traceback(capsys.readouterr().err)
    assert f"hubguard: error: demo work folder {work} is a file, not a folder\n" in err
    assert "fix: pass a folder that does not exist yet or is empty" in err


def test_demo_refuses_a_used_work_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "work"
    (work / "custom-resnet").mkdir(parents=True)
    assert main(["demo", "--small", "--work-dir", str(work)]) == 2
    err = _no_traceback(capsys.readouterr().err)
    assert f"hubguard: error: demo work folder {work} is not empty\n" in err
    assert sorted(path.name for path in work.iterdir()) == ["custom-resnet"]


def test_demo_example_without_init(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    example = tmp_path / "my-example"
    example.mkdir()
    (example / "modeling_resnet.py").write_text("")
    (example / "configuration_resnet.py").write_text("")
    work = tmp_path / "work"
    assert main(["demo", "--small", "--example", str(example), "--work-dir", str(work)]) == 2
    err = _no_traceback(capsys.readouterr().err)
    assert f"hubguard: error: example folder {example} lacks __init__.py\n" in err
    assert "fix: pass a folder like examples/custom_resnet that holds __init__.py, configuration_resnet.py" in err
    assert not work.exists()


def test_demo_missing_example_not_bundled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    example = tmp_path / "nope"
    assert main(["demo", "--small", "--example", str(example)]) == 2
    err = _no_traceback(capsys.readouterr().err)
    assert f"hubguard: error: example folder {example} does not exist\n" in err
    assert "bundled" not in err


def test_demo_example_import_fails(tmp_path: Path) -> None:
    from hubguard.demo import EXAMPLE_FILES, _import_example
    from hubguard.errors import HubguardError

    example = tmp_path / "broken"
    example.mkdir()
    for name in EXAMPLE_FILES:
        (example / name).write_text("")
    (example / "modeling_resnet.py").write_text("raise RuntimeError('author bug')\n")
    with pytest.raises(HubguardError, match=r"importing the example from .*broken failed: RuntimeError: author bug"):
        _import_example(example)
    assert not any(name.startswith("hubguard_demo_example") for name in sys.modules)


def test_demo_help_says_example_trusted(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--help"])
    assert exit_info.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "Its code is imported directly as trusted author code, not sandboxed" in help_text


# --- load --image: checked before loading, model failures reported -------------------------


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_load_image_checked_first(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "img.png"
    if kind == "folder":
        image.mkdir()
    # The source does not exist either: the image check comes first, so exit 2 and not 3.
    assert main(["load", str(tmp_path / "no-such-model"), "--trust-remote-code", "--image", str(image)]) == 2
    err = _no_traceback(capsys.readouterr().err)
    problem = "does not exist" if kind == "missing" else "is not a file"
    assert err == f"hubguard: error: --image {image} {problem}\n  fix: pass a PNG or JPEG file\n"


def test_classify_image_model_fails(tmp_path: Path) -> None:
    import torch
    from PIL import Image

    from hubguard.cli._load import classify_image
    from hubguard.errors import HubguardError

    class TextOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(10, 4)

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            return self.embed(input_ids)

    image = tmp_path / "img.png"
    Image.new("RGB", (8, 8), (10, 20, 30)).save(image)
    with pytest.raises(HubguardError, match=rf"^running .*TextOnly on {image} failed: RuntimeError: ") as error_info:
        classify_image(TextOnly(), image)
    assert "leave out --image to only load the model" in error_info.value.diagnostics()


# --- policy check: several files, as the pre-commit hook passes them -----------------------


def test_policy_check_several_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.toml"
    good.write_text('extends = "strict"\nname = "ci"\n')
    bad = tmp_path / "bad.toml"
    bad.write_text("extends = \n")
    also_good = tmp_path / "also.toml"
    also_good.write_text('extends = "default"\nname = "also"\n')
    assert main(["policy", "check", str(good), str(bad), str(also_good)]) == 2
    lines = _no_traceback(capsys.readouterr().err).splitlines()
    assert lines[0].startswith(f"OK: {good}: policy 'ci', sha256 ")
    assert lines[1].startswith(f"FAIL: {bad}: ")
    assert "policy file is not valid TOML" in lines[1]
    assert [line for line in lines if line.startswith(("OK: ", "FAIL: "))][2].startswith(f"OK: {also_good}: policy 'also'")


def test_policy_check_all_valid_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = tmp_path / "one.toml", tmp_path / "two.toml"
    first.write_text('extends = "default"\nname = "one"\n')
    second.write_text('extends = "strict"\nname = "two"\n')
    assert main(["policy", "check", str(first), str(second)]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(", sha256 ")[0] for line in lines] == [f"OK: {first}: policy 'one'", f"OK: {second}: policy 'two'"]


# --- scan: only .py files and folders ------------------------------------------------------


@pytest.mark.parametrize("name", ["notes.txt", "modeling_x.pyc", "README"])
def test_scan_refuses_non_python_file(
    name: str, clean_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / name
    other.write_text("hello\n")
    assert main(["scan", str(clean_repo), str(other)]) == 2
    captured = capsys.readouterr()
    assert _no_traceback(captured.err) == (
        f"hubguard: error: {other} is neither a .py file nor a folder\n  fix: pass a model folder or a .py file\n"
    )
    assert captured.out == ""


# --- scan of several folders names every source -------------------------------------------


@pytest.fixture
def two_folders(tmp_path: Path) -> tuple[Path, Path]:
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        folder.mkdir()
        (folder / "modeling_x.py").write_text(CLEAN)
    return first, second


def test_scan_summary_names_every_source(two_folders: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    first, second = two_folders
    assert main(["scan", str(first), str(second)]) == 0
    captured = capsys.readouterr()
    assert captured.err == f"OK: 2 sources: {first}, {second}: allow (0 blocking of 0 findings)\n"
    assert f"source:   2 sources: {first}, {second}\n" in captured.out


def test_scan_json_source_summary(
    two_folders: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = two_folders
    assert main(["scan", str(first), str(second), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["source"] == str(first)
    assert data["source_summary"] == f"2 sources: {first}, {second}"
    assert [entry["source"] for entry in data["sources"]] == [str(first), str(second)]


@pytest.mark.parametrize("report_format", ["markdown", "sarif"])
def test_scan_markdown_sarif_sources(
    report_format: str, two_folders: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = two_folders
    assert main(["scan", str(first), str(second), "--format", report_format]) == 0
    out = capsys.readouterr().out
    if report_format == "markdown":
        assert f"- source: 2 sources: `{first}`, `{second}`\n" in out
    else:
        assert json.loads(out)["runs"][0]["properties"]["source_summary"] == f"2 sources: {first}, {second}"


def test_schema_accepts_source_summary(two_folders: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from importlib import resources

    schema = json.loads(resources.files("hubguard").joinpath("schemas/report-1.json").read_text())
    assert main(["scan", *map(str, two_folders), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    jsonschema.validate(data, schema)
    assert "source_summary" not in schema["required"]


# --- report wording: requested revision of local sources, bandit policy keys ---------------

SHELL_CALL = "import subprocess\n\n\ndef f(command):\n    subprocess.call(command, shell=True)\n"


def test_local_source_requested_none(
    clean_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", str(clean_repo)]) == 0
    assert "\nrevision: requested none (local folder), resolved sha256:" in capsys.readouterr().out
    assert main(["scan", str(clean_repo / "modeling_x.py"), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "\n- revision: requested none (local file), resolved `sha256:" in out
    assert "None" not in out


def test_requested_text_git_source() -> None:
    from hubguard.audit.formats import requested_text

    entry = {"source": "git+file:///r", "kind": "git", "requested_revision": "a" * 40}
    assert requested_text(entry, quote="`") == f"`{'a' * 40}`"
    assert requested_text(entry | {"requested_revision": None}) == "none (default branch)"


@pytest.mark.parametrize("report_format", ["text", "json", "sarif", "markdown"])
def test_bandit_policy_key_names_id(
    report_format: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "shell"
    folder.mkdir()
    (folder / "modeling_x.py").write_text(SHELL_CALL)
    assert main(["scan", str(folder), "--format", report_format]) == 1
    out = capsys.readouterr().out
    if report_format == "json":
        keys = {item["rule_id"]: item["policy_key"] for item in json.loads(out)["findings"]}
    elif report_format == "sarif":
        results = json.loads(out)["runs"][0]["results"]
        keys = {item["ruleId"]: item["properties"]["policy_key"] for item in results}
    else:
        keys = {rule: key for rule, key in (("B602", 'bandit.warn["B602"]'), ("B404", 'bandit.warn["B404"]')) if key in out}
    assert keys["B602"] == 'bandit.warn["B602"]'
    assert keys["B404"] == 'bandit.warn["B404"]'
    assert "bandit.unknown" not in out


# --- policy files: where a bad extends is, directories, names of custom policies ------------


def test_missing_extends_target_located(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "mine.toml"
    policy.write_text('# team policy\nname = "mine"\nextends = "nonexistent"\n')
    assert main(["policy", "check", str(policy)]) == 2
    err = _no_traceback(capsys.readouterr().err)
    assert f"FAIL: {policy}: [HG403] {policy}:3: extends names {tmp_path / 'nonexistent'}, but policy file " in err
    assert "was not found\n  fix: set extends to \"default\", \"strict\" or the path of a policy TOML file" in err


def test_extends_pointing_at_a_folder(tmp_path: Path) -> None:
    from hubguard.audit.policy import load_policy
    from hubguard.errors import PolicyFileError

    (tmp_path / "shared").mkdir()
    policy = tmp_path / "mine.toml"
    policy.write_text('extends = "shared"\n')
    with pytest.raises(PolicyFileError, match=r"extends names .*shared, but .*shared is a directory, not a policy file") as error:
        load_policy(policy)
    assert (error.value.path, error.value.line) == (str(policy), 1)


def test_policy_check_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", str(tmp_path)]) == 2
    err = _no_traceback(capsys.readouterr().err)
    assert f"FAIL: {tmp_path}: {tmp_path}: {tmp_path} is a directory, not a policy file\n" in err
    assert "UTF-8" not in err


def test_unnamed_policy_uses_file_stem(tmp_path: Path) -> None:
    from hubguard.audit.policy import load_policy

    policy = tmp_path / "mypolicy.toml"
    policy.write_text('extends = "default"\n[bandit]\nwarn = ["B602"]\n')
    loaded = load_policy(policy)
    assert loaded.name == "mypolicy"
    assert loaded.sha256 != load_policy("default").sha256


@pytest.mark.parametrize("content", ['extends = "strict"\n', 'extends = "strict"\nname = "strict"\n'])
def test_policy_file_never_shipped_name(content: str, tmp_path: Path) -> None:
    from hubguard.audit.policy import load_policy

    policy = tmp_path / "strict.toml"
    policy.write_text(content)
    assert load_policy(policy).name == "strict (custom file strict.toml)"
    assert load_policy("strict").name == "strict"


def test_demo_git_failure_is_hubguard_error(tmp_path: Path) -> None:
    from hubguard.demo import _git
    from hubguard.errors import HubguardError

    with pytest.raises(HubguardError, match=r"^git rev-parse HEAD failed in .*: fatal: not a git repository"):
        _git(tmp_path, "rev-parse", "HEAD")
