"""Policy files: loading, matching, composition with extends, validation errors, the JSON Schema."""

from __future__ import annotations

import json
import textwrap
import tomllib
from pathlib import Path

import pytest

from hubguard.audit.policy import Rule, load_policy, policy_json_schema
from hubguard.errors import PolicyFileError

POLICIES = Path(__file__).resolve().parent.parent / "policies"


@pytest.fixture(params=["default", "strict"])
def shipped(request: pytest.FixtureRequest):
    return load_policy(request.param)


def write(tmp_path: Path, text: str, name: str = "policy.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


class TestDecideModule:
    def test_longest_prefix_decides(self, shipped) -> None:
        assert shipped.decide_module("torch.nn.functional") == Rule("allow", 'modules.allow["torch"]')
        assert shipped.decide_module("torch.hub.load") == Rule("deny", 'modules.deny["torch.hub"]')
        assert shipped.decide_module("torch.utils.cpp_extension.load_inline").key == 'modules.deny["torch.utils.cpp_extension"]'

    def test_pattern_matches_same_depth(self, shipped) -> None:
        assert shipped.decide_module("transformers.AutoModelForImageClassification.register") == Rule(
            "deny", 'modules.deny["transformers.Auto*.register"]'
        )
        assert shipped.decide_module("hubguard.AutoConfig.register").verdict == "deny"

    def test_guarded_does_not_exempt_denied(self, shipped) -> None:
        assert shipped.decide_module("socket", guarded=True) == Rule("deny", 'modules.deny["socket"]')

    def test_default_unknown_guarded_warns(self) -> None:
        policy = load_policy("default")
        assert policy.decide_module("acme_fastkern", guarded=True) == Rule("warn", "modules.unknown_guarded")
        assert policy.decide_module("acme_fastkern") == Rule("deny", "modules.unknown")

    def test_strict_unknown_guarded_denies(self) -> None:
        assert load_policy("strict").decide_module("acme_fastkern", guarded=True) == Rule("deny", "modules.unknown_guarded")

    def test_partial_module_allows_only_itself(self) -> None:
        policy = load_policy("default")
        assert policy.decide_module("os") == Rule("allow", 'modules.partial["os"]')
        assert policy.decide_module("os.path.join") == Rule("allow", 'modules.allow["os.path"]')
        assert policy.decide_module("os.getuid") == Rule("deny", "modules.unknown")
        assert policy.decide_module("os.execvp") == Rule("deny", 'modules.deny["os.exec*"]')

    def test_mapped_names_allowed(self, shipped) -> None:
        for name in (
            "typing.Optional",
            "math.sqrt",
            "dataclasses.dataclass",
            "functools.partial",
            "enum.Enum",
            "warnings.warn",
            "logging.getLogger",
            "transformers.PretrainedConfig",
            "transformers.PreTrainedModel",
            "transformers.AutoConfig",
            "transformers.AutoModelForImageClassification",
            "transformers.modeling_outputs.ImageClassifierOutput",
            "transformers.utils.logging",
            "hubguard.PreTrainedModel",
            "timm.layers.DropPath",
            "torch.nn.Module",
        ):
            assert shipped.decide_module(name).verdict == "allow", name

    def test_rule_list_denied(self, shipped) -> None:
        for name in (
            "torch.load",
            "torch.hub",
            "torch.ops.load_library",
            "numpy.load",
            "pickle.loads",
            "subprocess.run",
            "os.system",
            "socket.socket",
            "urllib.request.urlopen",
            "requests.get",
            "ctypes.CDLL",
            "importlib.import_module",
            "sys.modules",
            "builtins.open",
            "inspect.currentframe",
            "gc.get_objects",
            "typing.get_type_hints",
        ):
            assert shipped.decide_module(name).verdict == "deny", name


class TestBuiltinsAndDunders:
    def test_builtins(self, shipped) -> None:
        for name in ("eval", "exec", "compile", "__import__", "open", "globals", "vars", "locals", "breakpoint"):
            assert shipped.decide_builtin(name) == Rule("deny", f'builtins.deny["{name}"]')
        assert shipped.decide_builtin("len") == Rule("allow", 'builtins.allow["len"]')
        assert shipped.decide_builtin("KeyError") == Rule("allow", 'builtins.allow["*Error"]')
        assert shipped.decide_builtin("__build_class__").verdict == "allow"

    def test_dunders(self, shipped) -> None:
        for name in ("__globals__", "__subclasses__", "__bases__", "__code__", "__builtins__", "gi_frame", "f_back", "tb_frame"):
            assert shipped.decide_dunder(name).verdict == "deny", name
        assert shipped.decide_dunder("__init__") == Rule("allow", 'dunders.allow["__init__"]')
        assert shipped.decide_dunder("weight") == Rule("allow", "dunders")

    def test_unknown_dunder(self) -> None:
        assert load_policy("default").decide_dunder("__weird__") == Rule("warn", "dunders.unknown")
        assert load_policy("strict").decide_dunder("__weird__") == Rule("deny", "dunders.unknown")


class TestSettings:
    def test_default_settings(self) -> None:
        policy = load_policy()
        assert policy.name == "default"
        assert policy.trial.mode == "if-available"
        assert policy.revisions.allow_floating is False
        assert policy.weights.allow_pickle is False
        assert policy.audit.fail_on == "high"
        assert "B614" in policy.bandit.skips

    def test_strict_settings(self) -> None:
        policy = load_policy("strict")
        assert policy.trial.mode == "required"
        assert policy.revisions.allow_floating is False
        assert policy.decide_construct("module_level_code") == Rule("deny", "code.module_level_code")

    def test_sha256_differs_between_policies(self) -> None:
        assert load_policy("default").sha256 != load_policy("strict").sha256
        assert len(load_policy("default").sha256) == 64


class TestExtends:
    def test_child_moves_name_between_lists(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            """
            extends = "default"
            name = "tokenizers"

            [builtins]
            allow = ["open"]

            [modules]
            allow = ["acme_kernels"]

            [trial]
            mode = "off"
            """,
        )
        policy = load_policy(path)
        assert policy.name == "tokenizers"
        assert policy.decide_builtin("open") == Rule("allow", 'builtins.allow["open"]')
        assert policy.decide_module("acme_kernels.ops") == Rule("allow", 'modules.allow["acme_kernels"]')
        assert policy.trial.mode == "off"
        assert policy.decide_module("socket").verdict == "deny"
        assert policy.sha256 != load_policy("default").sha256

    def test_extends_relative_file(self, tmp_path: Path) -> None:
        write(tmp_path, 'extends = "strict"\nname = "base"\n[modules]\nallow = ["os.path"]\n', "base.toml")
        path = write(tmp_path, 'extends = "base.toml"\nname = "team"\n')
        policy = load_policy(path)
        assert policy.name == "team"
        assert policy.trial.mode == "required"
        assert policy.decide_module("os.path.join") == Rule("allow", 'modules.allow["os.path"]')

    def test_extends_cycle(self, tmp_path: Path) -> None:
        write(tmp_path, 'extends = "b.toml"\n', "a.toml")
        write(tmp_path, 'extends = "a.toml"\n', "b.toml")
        with pytest.raises(PolicyFileError, match="extends chain is deeper than 8 files"):
            load_policy(tmp_path / "a.toml")

    def test_file_without_extends_must_be_complete(self, tmp_path: Path) -> None:
        path = write(tmp_path, 'name = "partial"\n[modules]\nunknown = "deny"\n')
        with pytest.raises(PolicyFileError, match="policy sets no value for modules.unknown_guarded"):
            load_policy(path)


class TestValidation:
    def test_bad_verdict_names_key_line_and_choices(self, tmp_path: Path) -> None:
        path = write(tmp_path, 'extends = "default"\n\n[code]\nmonkey_patch = "maybe"\n')
        with pytest.raises(PolicyFileError, match=r"code\.monkey_patch: got 'maybe'") as caught:
            load_policy(path)
        assert caught.value.line == 4
        assert caught.value.path == str(path)
        assert 'one of "allow", "warn", "deny"' in caught.value.diagnostics()

    def test_unknown_key(self, tmp_path: Path) -> None:
        path = write(tmp_path, 'extends = "default"\n[trial]\nmode = "off"\ncpu_secs = 3\n')
        with pytest.raises(PolicyFileError, match=r"trial\.cpu_secs: unknown key; allowed keys in \[trial\] are cpu_seconds") as caught:
            load_policy(path)
        assert caught.value.line == 4

    def test_unknown_section(self, tmp_path: Path) -> None:
        path = write(tmp_path, 'extends = "default"\n[network]\nallow = true\n')
        with pytest.raises(PolicyFileError, match="network: unknown key") as caught:
            load_policy(path)
        assert caught.value.line == 2

    def test_bad_list_item_line(self, tmp_path: Path) -> None:
        path = write(tmp_path, 'extends = "default"\n[modules]\nallow = [\n  "numpy",\n  "not a name",\n]\n')
        with pytest.raises(PolicyFileError, match=r"modules\.allow\[1\]: item 'not a name' is not a dotted name") as caught:
            load_policy(path)
        assert caught.value.line == 5

    def test_wrong_type(self, tmp_path: Path) -> None:
        path = write(tmp_path, 'extends = "default"\n[weights]\nallow_pickle = "yes"\n')
        with pytest.raises(PolicyFileError, match=r"weights\.allow_pickle: got 'yes'") as caught:
            load_policy(path)
        assert "true or false" in caught.value.diagnostics()

    def test_trial_mode_choices(self, tmp_path: Path) -> None:
        path = write(tmp_path, 'extends = "default"\n[trial]\nmode = "sometimes"\n')
        with pytest.raises(PolicyFileError, match=r"trial\.mode: got 'sometimes'") as caught:
            load_policy(path)
        assert 'one of "required", "if-available", "off"' in caught.value.diagnostics()

    def test_bad_bandit_id(self, tmp_path: Path) -> None:
        path = write(tmp_path, 'extends = "default"\n[bandit]\nskips = ["assert_used"]\n')
        with pytest.raises(PolicyFileError, match=r"bandit\.skips\[0\]: item 'assert_used' is not a bandit id"):
            load_policy(path)

    def test_toml_syntax_error_line(self, tmp_path: Path) -> None:
        path = write(tmp_path, 'extends = "default"\n[modules\nallow = []\n')
        with pytest.raises(PolicyFileError, match="policy file is not valid TOML") as caught:
            load_policy(path)
        assert caught.value.line == 2

    def test_schema_version(self, tmp_path: Path) -> None:
        path = write(tmp_path, 'schema_version = 2\nextends = "default"\n')
        with pytest.raises(PolicyFileError, match="schema_version: unsupported schema version 2") as caught:
            load_policy(path)
        assert caught.value.line == 1

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(PolicyFileError, match="policy file .*nope.toml was not found"):
            load_policy(tmp_path / "nope.toml")

    def test_not_utf8(self, tmp_path: Path) -> None:
        path = tmp_path / "latin1.toml"
        path.write_bytes(b'name = "caf\xe9"\n')
        with pytest.raises(PolicyFileError, match="latin1.toml is not UTF-8 text: ") as error:
            load_policy(path)
        assert error.value.hint == "save it as UTF-8 text"


class TestSchema:
    def test_shipped_schema_is_generated(self) -> None:
        shipped = json.loads((POLICIES / "schema.json").read_text(encoding="utf-8"))
        assert shipped == policy_json_schema()

    def test_shipped_policies_validate(self) -> None:
        jsonschema = pytest.importorskip("jsonschema")
        schema = policy_json_schema()
        for name in ("default", "strict"):
            with (POLICIES / f"{name}.toml").open("rb") as handle:
                jsonschema.validate(tomllib.load(handle), schema)

    def test_schema_rejects_unknown_key(self) -> None:
        jsonschema = pytest.importorskip("jsonschema")
        with pytest.raises(jsonschema.ValidationError, match="Additional properties"):
            jsonschema.validate({"trial": {"cpu_secs": 1}}, policy_json_schema())
