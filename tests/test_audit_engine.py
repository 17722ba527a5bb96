"""hubguard's AST rules: every rule fires on its pattern and stays quiet on the ordinary idiom next to it."""

from __future__ import annotations

import textwrap

import pytest

from hubguard.audit.engine import scan_source
from hubguard.audit.policy import load_policy


def findings(code: str, policy: str = "default") -> list[tuple[str, int, str]]:
    """Return ``(rule_id, line, verdict)`` of every finding, sorted."""
    scan = scan_source(textwrap.dedent(code).lstrip("\n"), "modeling_x.py", load_policy(policy))
    return sorted((finding.rule_id, finding.line, finding.verdict) for finding in scan.findings)


# (test id, source, expected findings under the default policy)
FIRES = [
    ("HG201-unknown-module", "import acme_evil\n", [("HG201", 1, "deny")]),
    ("HG201-unknown-name", "from acme_evil import thing\n", [("HG201", 1, "deny")]),
    ("HG202-os-member", "import os\n\ndef f():\n    os.getuid()\n", [("HG202", 4, "deny")]),
    ("HG202-warn-jit-load", "import torch\n\ndef f():\n    torch.jit.load('m.pt')\n", [("HG202", 4, "warn")]),
    ("HG203-open", "def f(p):\n    return open(p)\n", [("HG203", 2, "deny")]),
    ("HG203-eval", "def f(s):\n    return eval(s)\n", [("HG203", 2, "deny")]),
    ("HG203-exec", "def f(s):\n    exec(s)\n", [("HG203", 2, "deny")]),
    ("HG203-compile", "def f(s):\n    return compile(s, 'x', 'exec')\n", [("HG203", 2, "deny")]),
    ("HG203-dunder-import", "def f():\n    return __import__('os')\n", [("HG203", 2, "deny")]),
    ("HG203-globals", "def f():\n    return globals()\n", [("HG203", 2, "deny")]),
    ("HG203-vars", "def f(p):\n    return vars(p)\n", [("HG203", 2, "deny")]),
    ("HG203-locals", "def f():\n    return locals()\n", [("HG203", 2, "deny")]),
    ("HG203-breakpoint", "def f():\n    breakpoint()\n", [("HG203", 2, "deny")]),
    ("HG203-builtin-as-value", "def f():\n    run = eval\n    return run\n", [("HG203", 2, "deny")]),
    ("HG203-comprehension-does-not-shadow", "def f(x):\n    [0 for open in x]\n    return open('p')\n", [("HG203", 3, "deny")]),
    ("HG204-getattr", "def f(x, name):\n    return getattr(x, name)\n", [("HG204", 2, "deny")]),
    ("HG204-setattr", "def f(x, name):\n    setattr(x, name, 1)\n", [("HG204", 2, "deny")]),
    ("HG204-delattr", "def f(x, name):\n    delattr(x, name)\n", [("HG204", 2, "deny")]),
    ("HG204-hasattr", "def f(x, name):\n    return hasattr(x, name)\n", [("HG204", 2, "deny")]),
    ("HG205-nosec", "X = 1  # nosec\n", [("HG205", 1, "deny")]),
    ("HG206-bases", "def f(p):\n    return p.__class__.__bases__\n", [("HG206", 2, "deny")]),
    ("HG206-subclasses", "def f():\n    return object.__subclasses__()\n", [("HG206", 2, "deny")]),
    ("HG206-globals-attr", "def f(g):\n    return g.__globals__\n", [("HG206", 2, "deny")]),
    ("HG206-builtins-name", "def f():\n    return __builtins__\n", [("HG206", 2, "deny")]),
    ("HG206-code", "def f(g):\n    return g.__code__\n", [("HG206", 2, "deny")]),
    ("HG206-gi-frame", "def f(g):\n    return g.gi_frame\n", [("HG206", 2, "deny")]),
    ("HG206-f-back", "def f(frame):\n    return frame.f_back\n", [("HG206", 2, "deny")]),
    ("HG206-tb-frame", "def f(tb):\n    return tb.tb_frame\n", [("HG206", 2, "deny")]),
    ("HG206-getattr-literal-dunder", "def f(p):\n    return getattr(p, '__dict__')\n", [("HG206", 2, "deny")]),
    ("HG207-module-attribute", "import torch\n\ndef f(g):\n    torch.load = g\n", [("HG207", 4, "deny")]),
    ("HG207-class-attribute", "import torch.nn as nn\n\ndef f(g):\n    nn.Module.forward = g\n", [("HG207", 4, "deny")]),
    ("HG207-setattr-literal", "import torch\n\ndef f(g):\n    setattr(torch, 'load', g)\n", [("HG207", 4, "deny")]),
    ("HG207-delete", "import math\n\ndef f():\n    del math.pi\n", [("HG207", 4, "deny")]),
    ("HG208-bare-call", "print('loading')\n", [("HG208", 1, "warn")]),
    ("HG208-for-loop", "for i in range(3):\n    pass\n", [("HG208", 1, "warn")]),
    ("HG208-class-body", "class A:\n    print('x')\n", [("HG208", 2, "warn")]),
    (
        "HG209-decoded-exec",
        "import base64\n\ndef f(s):\n    exec(base64.b64decode(s))\n",
        [("HG203", 4, "deny"), ("HG209", 4, "deny")],
    ),
    ("HG209-chr-join", "def f():\n    return ''.join([chr(111), chr(115)])\n", [("HG209", 2, "deny")]),
    ("HG209-chr-concat", "def f():\n    return chr(111) + chr(115)\n", [("HG209", 2, "deny")]),
    ("HG210-blob", "BLOB = '" + "QUJD" * 100 + "'\n", [("HG210", 1, "warn")]),
    ("HG211-torch-load", "import torch\n\ndef f(p):\n    return torch.load(p)\n", [("HG211", 4, "deny")]),
    ("HG211-pickle", "import pickle\n", [("HG211", 1, "deny")]),
    ("HG211-numpy-load", "import numpy as np\n\ndef f(p):\n    return np.load(p)\n", [("HG211", 4, "deny")]),
    ("HG212-cpp-extension", "import torch\n\ndef f():\n    torch.utils.cpp_extension.load_inline('k', '')\n", [("HG212", 4, "deny")]),
    ("HG212-load-library", "import torch\n\ndef f(p):\n    torch.ops.load_library(p)\n", [("HG212", 4, "deny")]),
    ("HG212-ctypes", "import ctypes\n", [("HG212", 1, "deny")]),
    ("HG213-subprocess", "import subprocess\n", [("HG213", 1, "deny")]),
    ("HG213-os-system", "import os\n\ndef f():\n    os.system('id')\n", [("HG213", 4, "deny")]),
    ("HG213-os-exec", "import os\n\ndef f():\n    os.execv('/bin/sh', [])\n", [("HG213", 4, "deny")]),
    ("HG214-socket", "import socket\n", [("HG214", 1, "deny")]),
    ("HG214-urllib", "from urllib.request import urlopen\n", [("HG214", 1, "deny")]),
    ("HG214-requests", "import requests\n", [("HG214", 1, "deny")]),
    ("HG214-torch-hub", "import torch\n\ndef f():\n    return torch.hub.load('a/b', 'm')\n", [("HG214", 4, "deny")]),
    ("HG215-importlib", "import importlib\n", [("HG215", 1, "deny")]),
    ("HG215-sys-modules", "import sys\n\ndef f():\n    return sys.modules\n", [("HG215", 4, "deny")]),
    ("HG215-builtins", "import builtins\n", [("HG215", 1, "deny")]),
    ("HG215-inspect", "import inspect\n", [("HG215", 1, "deny")]),
    ("HG215-gc", "import gc\n", [("HG215", 1, "deny")]),
    ("HG215-get-type-hints", "from typing import get_type_hints\n", [("HG215", 1, "deny")]),
    (
        "HG216-register",
        "from transformers import AutoConfig\n\ndef f(c):\n    AutoConfig.register('x', c)\n",
        [("HG216", 4, "deny")],
    ),
    (
        "HG216-hubguard-register",
        "from hubguard import AutoModelForImageClassification as A\n\ndef f(c, m):\n    A.register(c, m)\n",
        [("HG216", 4, "deny")],
    ),
    (
        "HG217-nested-from-pretrained",
        "from transformers import AutoModel\n\ndef f():\n    return AutoModel.from_pretrained('org/other')\n",
        [("HG217", 4, "deny")],
    ),
    ("HG219-module-as-value", "import os\n\ndef f(g):\n    return g(os)\n", [("HG219", 4, "deny")]),
]

QUIET = [
    ("import-torch-nn", "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"),
    ("os-path-join", "import os\n\ndef f(a, b):\n    return os.path.join(a, b)\n"),
    ("shadowed-open", "def f(open):\n    return open(1)\n"),
    ("len-call", "def f(x):\n    return len(x)\n"),
    ("getattr-literal", "def f(config):\n    return getattr(config, 'hidden_size', 4)\n"),
    ("nosec-in-string", "X = '# nosec'\n"),
    ("class-name", "def f(self):\n    return self.__class__.__name__\n"),
    ("self-attribute", "class A:\n    def f(self):\n        self.weight = 1\n"),
    ("logger", "import logging\n\nlogger = logging.getLogger(__name__)\n"),
    ("optional-import-block", "try:\n    import einops\nexcept ImportError:\n    einops = None\n"),
    ("decode-alone", "import base64\n\ndef f(s):\n    return base64.b64decode(s)\n"),
    ("chr-alone", "def f(i):\n    return chr(i)\n"),
    ("long-docstring", '"""' + "A sentence with words. " * 400 + '"""\n'),
    ("torch-load-weights-only", "import torch\n\ndef f(p):\n    return torch.load(p, weights_only=True)\n"),
    ("torch-checkpoint", "import torch\n\ndef f(m, x):\n    return torch.utils.checkpoint.checkpoint(m, x)\n"),
    ("os-path-exists", "import os\n\ndef f(p):\n    return os.path.exists(p)\n"),
    ("typing-optional", "from typing import Optional\n"),
    ("register-buffer", "class A:\n    def f(self, t):\n        self.register_buffer('x', t)\n"),
    ("define-from-pretrained", "class A:\n    @classmethod\n    def from_pretrained(cls, path):\n        return cls()\n"),
    ("star-import-default", "from math import *\n"),
    ("hubguard-names", "from hubguard import PretrainedConfig, PreTrainedModel\n"),
    ("transformers-logging", "from transformers.utils import logging\n\nlogger = logging.get_logger(__name__)\n"),
    ("dataclass", "from dataclasses import dataclass, field\n\n@dataclass\nclass C:\n    x: int = 1\n"),
    ("super-init", "class A(object):\n    def __init__(self):\n        super().__init__()\n"),
    ("if-type-checking", "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from typing import Any\n"),
]


@pytest.mark.parametrize(("code", "expected"), [case[1:] for case in FIRES], ids=[case[0] for case in FIRES])
def test_rule_fires(code: str, expected: list[tuple[str, int, str]]) -> None:
    assert findings(code) == expected


@pytest.mark.parametrize("code", [case[1] for case in QUIET], ids=[case[0] for case in QUIET])
def test_rule_quiet(code: str) -> None:
    assert findings(code) == []


class TestAliases:
    def test_module_alias(self) -> None:
        assert findings("import torch as t\n\ndef f():\n    t.hub.load('a', 'b')\n") == [("HG214", 4, "deny")]

    def test_from_import_alias(self) -> None:
        assert findings("from torch import load as l\n\ndef f(p):\n    return l(p)\n") == [("HG211", 4, "deny")]

    def test_from_import_alias_safe_call(self) -> None:
        assert findings("from torch import load as l\n\ndef f(p):\n    return l(p, weights_only=True)\n") == []

    def test_assigned_alias(self) -> None:
        assert findings("import torch\n\ndef f(p):\n    t = torch\n    return t.load(p)\n") == [("HG211", 5, "deny")]

    def test_getattr_literal_resolves(self) -> None:
        assert findings("import os\n\ndef f():\n    getattr(os, 'system')('id')\n") == [("HG213", 4, "deny")]

    def test_submodule_import(self) -> None:
        assert findings("import torch.utils.cpp_extension\n") == [("HG212", 1, "deny")]

    def test_from_submodule(self) -> None:
        assert findings("from torch.utils import cpp_extension\n") == [("HG212", 1, "deny")]

    def test_local_function_shadows_import(self) -> None:
        code = "import torch\n\ndef f(torch):\n    return torch.load(1)\n"
        assert findings(code) == []

    def test_global_alias_from_function(self) -> None:
        code = "def setup():\n    global t\n    import torch as t\n\ndef f(p):\n    return t.load(p)\n"
        assert findings(code) == [("HG211", 6, "deny")]


class TestGuardedImports:
    def test_guarded_socket_denied(self) -> None:
        code = "try:\n    import socket\nexcept ImportError:\n    socket = None\n"
        assert findings(code) == [("HG214", 2, "deny")]

    def test_if_available_import_checked(self) -> None:
        code = "from transformers.utils import is_x_available\n\nif is_x_available():\n    import subprocess\n"
        assert findings(code) == [("HG201", 1, "warn"), ("HG213", 4, "deny")]

    def test_import_in_function_checked(self) -> None:
        assert findings("def f():\n    import ctypes\n") == [("HG212", 2, "deny")]

    def test_placements_recorded(self) -> None:
        code = textwrap.dedent(
            """
            import math
            try:
                import acme_a
            except ImportError:
                acme_a = None
            if math.pi > 3:
                import acme_b
            def f():
                import acme_c
            from . import sibling
            """
        ).lstrip()
        scan = scan_source(code, "m.py", load_policy("default"))
        placements = {(record.module, record.placement) for record in scan.imports}
        assert placements == {
            ("math", "unguarded"),
            ("acme_a", "guarded"),
            ("acme_b", "conditional"),
            ("acme_c", "lazy"),
            (".sibling", "relative"),
        }


class TestStrict:
    def test_module_level_code_denied(self) -> None:
        assert findings("print('x')\n", "strict") == [("HG208", 1, "deny")]

    def test_star_import_denied(self) -> None:
        assert findings("from math import *\n", "strict") == [("HG218", 1, "deny")]

    def test_unknown_guarded_denied(self) -> None:
        assert findings("try:\n    import flash_attn\nexcept ImportError:\n    pass\n", "strict") == [("HG201", 2, "deny")]

    def test_os_denied(self) -> None:
        assert findings("import os\n", "strict") == [("HG201", 1, "deny")]

    def test_long_string_denied(self) -> None:
        assert findings("B = '" + "QUJD" * 100 + "'\n", "strict") == [("HG210", 1, "deny")]


class TestBrokenInput:
    def test_syntax_error_is_high_finding(self) -> None:
        scan = scan_source("def f(:\n    pass\n", "bad.py", load_policy("default"))
        assert [(f.rule_id, f.line, f.verdict, f.severity.label) for f in scan.findings] == [("HG230", 1, "deny", "high")]
        assert scan.parsed is False

    def test_deep_nesting(self) -> None:
        code = "x = " + "-" * 5000 + "1\n"
        scan = scan_source(code, "deep.py", load_policy("default"))
        assert [(f.rule_id, f.verdict) for f in scan.findings] == [("HG231", "deny")]

    def test_deep_parentheses(self) -> None:
        code = "x = " + "(" * 3000 + "1" + ")" * 3000 + "\n"
        scan = scan_source(code, "deep.py", load_policy("default"))
        assert [(f.rule_id, f.verdict) for f in scan.findings] == [("HG231", "deny")]

    def test_deep_expression_over_max_nesting(self) -> None:
        code = "x = " + "not " * 300 + "1\n"
        scan = scan_source(code, "deep.py", load_policy("default"))
        assert [(f.rule_id, f.verdict) for f in scan.findings] == [("HG231", "deny")]

    def test_huge_file(self) -> None:
        code = "x = 1\n" * 3_500_000
        scan = scan_source(code, "huge.py", load_policy("default"))
        assert [(f.rule_id, f.verdict, f.policy_key) for f in scan.findings] == [("HG231", "deny", "audit.max_file_bytes")]

    def test_null_byte(self) -> None:
        scan = scan_source("x = 1\0\n", "nul.py", load_policy("default"))
        assert [(f.rule_id, f.verdict) for f in scan.findings] == [("HG230", "deny")]

    def test_finding_fields(self) -> None:
        scan = scan_source("import os\n\ndef f():\n    os.system('id')\n", "m.py", load_policy("default"))
        (finding,) = scan.findings
        assert finding.path == "m.py"
        assert (finding.line, finding.column) == (4, 5)
        assert finding.cwe == 78
        assert finding.snippet == "os.system('id')"
        assert finding.policy_key == 'modules.deny["os.system"]'
        assert finding.confidence.label == "high"
        assert finding.message == "use of 'os.system' is denied"


# Evasions: each payload reaches a refused capability by a less obvious path.
THROUGH_TORCH_SYS = "import torch\n\ndef f():\n    return torch.sys.modules\n"
THROUGH_OS_PATH_OS = "import os\n\ndef f():\n    os.path.os.system('id')\n"
THROUGH_WARNINGS_SYS = "import warnings\n\ndef f():\n    return warnings.sys.modules\n"
STAR_FROM_OS = "from os import *\n\ndef f():\n    system('id')\n"
STAR_FROM_TORCH = "from torch import *\n\ndef f(p):\n    return load(p)\n"
STAR_SHADOWS_OPEN = "from math import *\n\ndef f(p):\n    return open(p)\n"
ATTRGETTER_GLOBALS = "import operator\n\ndef f(g):\n    return operator.attrgetter('__globals__')(g)\n"
FORMAT_STRING_TRAVERSAL = "def f(p):\n    return '{0.__class__.__mro__}'.format(p)\n"
BUILTINS_DICT = "def f():\n    return __builtins__['open']\n"
ALIAS_OF_ALIAS = "import torch as t\n\nu = t\n\ndef f():\n    return u.hub.load('a', 'b')\n"


class TestEvasions:
    def test_sys_through_torch(self) -> None:
        assert findings(THROUGH_TORCH_SYS) == [("HG215", 4, "deny")]

    def test_os_through_os_path(self) -> None:
        assert findings(THROUGH_OS_PATH_OS) == [("HG213", 4, "deny")]

    def test_sys_through_warnings(self) -> None:
        assert findings(THROUGH_WARNINGS_SYS) == [("HG215", 4, "deny")]

    def test_star_from_partial_module(self) -> None:
        assert findings(STAR_FROM_OS) == [("HG213", 4, "deny"), ("HG219", 1, "deny")]

    def test_star_from_torch_resolves_names(self) -> None:
        assert findings(STAR_FROM_TORCH) == [("HG211", 4, "deny")]

    def test_star_keeps_builtin_check(self) -> None:
        assert findings(STAR_SHADOWS_OPEN) == [("HG203", 4, "deny")]

    def test_attrgetter_string(self) -> None:
        assert findings(ATTRGETTER_GLOBALS) == [("HG206", 4, "deny")]

    def test_format_string_traversal(self) -> None:
        assert findings(FORMAT_STRING_TRAVERSAL) == [("HG206", 2, "deny")]

    def test_builtins_mapping(self) -> None:
        assert findings(BUILTINS_DICT) == [("HG206", 2, "deny")]

    def test_alias_of_alias(self) -> None:
        assert findings(ALIAS_OF_ALIAS) == [("HG214", 6, "deny")]


FORMATTER_GET_FIELD = "import string\n\ndef run():\n    return string.Formatter().get_field('0.__globals__', [run], {})\n"
FORWARD_REF_EVAL = "import typing\n\ndef run():\n    return typing.ForwardRef(\"__import__('os').system('id')\")\n"
TORCH_SAVE_WRITES = "import torch\n\ndef run(t):\n    torch.save(t, '/tmp/x')\n"
NUMPY_SAVE_BY_GETATTR = "import numpy\n\ndef run():\n    getattr(numpy, 'save')('/tmp/x', numpy.zeros(1))\n"
PATHLIB_WRITE = "import pathlib\n\ndef run():\n    pathlib.Path('/tmp/x').write_text('x')\n"
TIMM_BUILDER_DOWNLOAD = "import timm.models._builder as builder\n\ndef run():\n    builder.load_state_dict_from_url('http://127.0.0.1:9/w')\n"
TORCH_THROUGH_TIMM = "import timm.models._builder as builder\n\ndef run(p):\n    return builder.torch.load(p)\n"
UPDATE_WRAPPER_PATCH = "import functools\nimport torch\n\ndef run(g):\n    functools.update_wrapper(torch.nn.Module, g)\n"
DATACLASS_ON_FOREIGN = "import dataclasses\nimport torch\n\ndef run():\n    dataclasses.dataclass(torch.nn.Linear)\n"
OBJECT_SETATTR = "import torch\n\ndef run():\n    setter = getattr(object, '__setattr__')\n    setter(torch, 'load', print)\n"
OBJECT_SETATTR_CALL = "import torch\n\ndef run():\n    object.__setattr__(torch, 'load', print)\n"
ENVIRONMENT_WRITE = "import os\n\ndef run():\n    os.environ['X'] = '1'\n"
MATCH_GLOBALS = "def run(value):\n    match value:\n        case object(__globals__=found):\n            return found\n"


class TestMoreEvasions:
    def test_formatter_get_field(self) -> None:
        assert findings(FORMATTER_GET_FIELD) == [("HG206", 4, "deny"), ("HG215", 4, "deny")]

    def test_forward_ref(self) -> None:
        assert findings(FORWARD_REF_EVAL) == [("HG206", 4, "deny"), ("HG215", 4, "deny")]

    def test_torch_save(self) -> None:
        assert findings(TORCH_SAVE_WRITES) == [("HG202", 4, "deny")]

    def test_numpy_save_by_getattr(self) -> None:
        assert findings(NUMPY_SAVE_BY_GETATTR) == [("HG202", 4, "deny")]

    def test_pathlib_method_left_to_sandbox(self) -> None:
        # NOTE: methods of objects (Path(...).write_text) cannot be resolved statically; the
        # sandbox's runtime guards refuse the write.
        assert findings(PATHLIB_WRITE) == []

    def test_timm_download_left_to_sandbox(self) -> None:
        # NOTE: timm re-exports torch.hub's downloader under its own module; the sandbox
        # identifies the function object at run time and refuses it as torch.hub.
        assert findings(TIMM_BUILDER_DOWNLOAD) == []

    def test_torch_reached_through_timm(self) -> None:
        assert findings(TORCH_THROUGH_TIMM) == [("HG211", 4, "deny")]

    def test_update_wrapper_on_import(self) -> None:
        assert findings(UPDATE_WRAPPER_PATCH) == [("HG207", 5, "deny")]

    def test_wraps_on_local_function_allowed(self) -> None:
        code = "import functools\n\ndef deco(f):\n    @functools.wraps(f)\n    def inner(*a):\n        return f(*a)\n    return inner\n"
        assert findings(code) == []

    def test_dataclass_on_foreign_class(self) -> None:
        assert findings(DATACLASS_ON_FOREIGN) == [("HG207", 5, "deny")]

    def test_object_setattr_by_getattr(self) -> None:
        assert findings(OBJECT_SETATTR) == [("HG207", 4, "deny"), ("HG219", 5, "deny")]

    def test_object_setattr_call(self) -> None:
        assert findings(OBJECT_SETATTR_CALL) == [("HG206", 4, "warn"), ("HG207", 4, "deny"), ("HG219", 4, "deny")]

    def test_super_setattr_allowed(self) -> None:
        code = "class A:\n    def __setattr__(self, name, value):\n        super().__setattr__(name, value)\n"
        assert findings(code) == [("HG206", 3, "warn")]

    def test_environment_write(self) -> None:
        assert findings(ENVIRONMENT_WRITE) == [("HG202", 4, "warn"), ("HG207", 4, "deny")]

    def test_match_class_dunder(self) -> None:
        assert findings(MATCH_GLOBALS) == [("HG206", 3, "deny")]

    def test_main_guard_string(self) -> None:
        assert findings("def main():\n    return 1\n\n\nif __name__ == '__main__':\n    main()\n") == [("HG208", 6, "warn")]


class TestLoopLiterals:
    def test_loop_over_literal_names_allowed(self) -> None:
        code = "def f(module):\n    for name in ('weight', 'bias'):\n        getattr(module, name)\n"
        assert findings(code) == []

    def test_loop_reaches_dunder(self) -> None:
        code = "def f(module):\n    for name in ('weight', '__globals__'):\n        getattr(module, name)\n"
        assert findings(code) == [("HG206", 2, "deny"), ("HG206", 3, "deny")]

    def test_loop_over_module_members(self) -> None:
        code = "import os\n\ndef f():\n    for name in ('path', 'system'):\n        getattr(os, name)\n"
        assert findings(code) == [("HG213", 5, "deny")]

    def test_loop_variable_reassigned_is_not_literal(self) -> None:
        code = "def f(module, names):\n    for name in names:\n        getattr(module, name)\n"
        assert findings(code) == [("HG204", 3, "deny")]

    def test_loop_variable_rebound_in_body(self) -> None:
        code = "def f(module, other):\n    for name in ('weight',):\n        name = other\n        getattr(module, name)\n"
        assert findings(code) == [("HG204", 4, "deny")]


USE_BEFORE_IMPORT = "def f(p):\n    return torch.load(p)\n\n\nimport torch\n"
USE_BEFORE_FUNCTION_IMPORT = "def f(p):\n    def g():\n        return t.hub.load('a', 'b')\n    import torch as t\n    return g\n"


class TestOrder:
    def test_function_above_import(self) -> None:
        assert findings(USE_BEFORE_IMPORT) == [("HG211", 2, "deny")]

    def test_nested_function_above_import(self) -> None:
        assert findings(USE_BEFORE_FUNCTION_IMPORT) == [("HG214", 3, "deny")]


MODULE_IN_CONTAINER = "import torch\n\ndef f(p):\n    backends = {'t': torch}\n    return backends['t'].load(p)\n"
MODULE_AS_ARGUMENT = "import numpy\n\ndef f(g):\n    return g(numpy)\n"


class TestModuleValues:
    def test_module_in_container(self) -> None:
        assert findings(MODULE_IN_CONTAINER) == [("HG219", 4, "deny")]

    def test_module_as_argument(self) -> None:
        assert findings(MODULE_AS_ARGUMENT) == [("HG219", 4, "deny")]

    def test_alias_assignment_allowed(self) -> None:
        assert findings("import numpy\n\ndef f():\n    np = numpy\n    return np.zeros(1)\n") == []

    def test_imported_class_as_value_allowed(self) -> None:
        assert findings("from torch.nn import Linear\n\ndef f(g):\n    return g(Linear)\n") == []
