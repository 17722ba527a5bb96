"""Hostile repositories: each payload would create ``@MARKER@`` or connect to 127.0.0.1:``@PORT@``.

A case is a small repository (``files``) whose ``modeling_x.py`` is the entry module.
``trigger`` says when the payload runs:

* ``import``: at module import;
* ``init``: when ``Model()`` is built;
* ``forward``: when ``Model().forward()`` is called;
* ``del``: when a ``Model`` instance is garbage collected (``__del__``);
* ``model_call``: when the host calls ``Model()()``, as it calls a torch model;
* ``eval``: when the host calls ``Model().eval()``, which calls ``train(False)``;
* ``call``: when the module function ``run()`` is called.

``match`` is a regular expression the ``SandboxViolation`` message must match and
``rule_id`` one for its rule (a set's iteration order can decide which refusal comes first). The test replaces ``@MARKER@`` and ``@PORT@`` before building the
snapshot. The static audit is not involved: these test the sandbox alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class HostileCase:
    """One hostile repository and the refusal the sandbox must raise for it."""

    name: str
    source: str
    trigger: str
    rule_id: str
    match: str
    extra_files: dict[str, str] = field(default_factory=dict)


def _case(name: str, source: str, trigger: str, rule_id: str, match: str, **extra: str) -> HostileCase:
    files = {f"{key}.py": value for key, value in extra.items()}
    return HostileCase(name=name, source=source, trigger=trigger, rule_id=rule_id, match=match, extra_files=files)


CASES: list[HostileCase] = [
    # --- direct calls -------------------------------------------------------------------
    _case(
        "open_for_writing_at_import",
        'open("@MARKER@", "w").write("pwned")\n',
        "import", "HG305", r"builtin open\(\) is withheld",
    ),
    _case(
        "os_system_at_import",
        'import os\nos.system("touch @MARKER@")\n',
        "import", "HG303", r"os\.system is refused",
    ),
    _case(
        "from_os_import_system",
        'from os import system\nsystem("touch @MARKER@")\n',
        "import", "HG301", r"import of 'os\.system' refused",
    ),
    _case(
        "subprocess_import",
        'import subprocess\nsubprocess.run(["touch", "@MARKER@"])\n',
        "import", "HG301", r"import of 'subprocess' refused",
    ),
    _case(
        "socket_connect",
        'import socket\nsocket.create_connection(("127.0.0.1", @PORT@))\n',
        "import", "HG301", r"import of 'socket' refused",
    ),
    _case(
        "urllib_request",
        'import urllib.request\nurllib.request.urlopen("http://127.0.0.1:@PORT@/")\n',
        "import", "HG301", r"import of 'urllib\.request' refused",
    ),
    _case(
        "ctypes_libc_system",
        'import ctypes\nctypes.CDLL(None).system(b"touch @MARKER@")\n',
        "import", "HG301", r"import of 'ctypes' refused",
    ),
    _case(
        "sys_modules_lookup",
        'import sys\nsys.modules["os"].system("touch @MARKER@")\n',
        "import", "HG303", r"sys\.modules is refused",
    ),
    # --- obfuscation ------------------------------------------------------------------------
    _case(
        "getattr_built_name",
        'import os\ngetattr(os, "sys" + "tem")("touch @MARKER@")\n',
        "import", "HG303", r"os\.system is refused",
    ),
    _case(
        "getattr_chr_name",
        'import os\nname = "".join(chr(c) for c in [115, 121, 115, 116, 101, 109])\ngetattr(os, name)("touch @MARKER@")\n',
        "import", "HG303", r"os\.system is refused",
    ),
    _case(
        "exec_decoded_blob",
        'import base64\nexec(base64.b64decode("b3BlbignQE1BUktFUkAnLCAndycp").decode())\n',
        "import", "HG306", r"Exec calls are not allowed",
    ),
    _case(
        "eval_through_alias",
        'run_code = eval\nrun_code("1")\n',
        "import", "HG305", r"builtin eval\(\) is withheld",
    ),
    _case(
        "compile_builtin",
        'code = compile("open(\'@MARKER@\', \'w\')", "x", "exec")\n',
        "import", "HG305", r"builtin compile\(\) is withheld",
    ),
    _case(
        "dunder_import_computed",
        '__import__("o" + "s").system("touch @MARKER@")\n',
        "import", "HG306", r'special name "__import__"',
    ),
    _case(
        "importlib_computed_name",
        'import importlib\nimportlib.import_module("o" + "s").system("touch @MARKER@")\n',
        "import", "HG301", r"import of 'importlib' refused",
    ),
    _case(
        "builtins_module",
        'import builtins\nbuiltins.open("@MARKER@", "w")\n',
        "import", "HG301", r"import of 'builtins' refused",
    ),
    # --- dunder and frame escapes ------------------------------------------------------------
    _case(
        "subclasses_walk",
        "def run():\n    base = getattr(getattr((), '__class__'), '__base__')\n    return base\n",
        "call", "HG302", r"special attribute '__base__'",
    ),
    _case(
        "subclasses_direct_syntax",
        "classes = ().__class__.__base__.__subclasses__()\n",
        "import", "HG306", r'"__base__" is not allowed',
    ),
    _case(
        "function_globals",
        "def helper():\n    pass\n\ndef run():\n    return getattr(helper, '__globals__')\n",
        "call", "HG302", r"special attribute '__globals__'",
    ),
    _case(
        "super_init_globals",
        "class Probe:\n    pass\n\ndef run():\n    return super(Probe, Probe()).__init__.__globals__\n",
        "import", "HG306", r'"__globals__" is not allowed',
    ),
    _case(
        "generator_frame_getattr",
        "def run():\n    gen = (x for x in [1])\n    frame = getattr(gen, 'gi_frame')\n    return getattr(frame, 'f_back')\n",
        "call", "HG302", r"frame or code attribute 'gi_frame'",
    ),
    _case(
        "generator_frame_syntax",
        "gen = (x for x in [1])\nglobals_of_caller = gen.gi_frame.f_back.f_globals\n",
        "import", "HG306", r'"gi_frame" is a frame or code attribute',
    ),
    _case(
        "traceback_frame",
        "def run():\n    try:\n        1 / 0\n    except ZeroDivisionError as error:\n        return getattr(error, '__traceback__')\n",
        "call", "HG302", r"special attribute '__traceback__'",
    ),
    _case(
        "traceback_tb_frame_getattr",
        "def run():\n    try:\n        1 / 0\n    except ZeroDivisionError as error:\n        holder = error\n    return getattr(holder, 'tb_frame')\n",
        "call", "HG302", r"frame or code attribute 'tb_frame'",
    ),
    _case(
        "except_star_group",
        "try:\n    raise ExceptionGroup('x', [ValueError()])\nexcept* ValueError as group:\n    leaked = group\n",
        "import", "HG306", r"TryStar statements are not allowed",
    ),
    _case(
        "str_format_traversal",
        "def helper():\n    pass\n\ndef run():\n    return '{0.__globals__}'.format(helper)\n",
        "call", "HG302", r"special attribute '__globals__'",
    ),
    _case(
        "str_format_map_traversal",
        "class Probe:\n    def __init__(self):\n        self.value = 1\n\ndef run():\n    return '{p.__init__.__globals__}'.format_map({'p': Probe()})\n",
        "call", "HG302", r"special attribute '__globals__'",
    ),
    _case(
        "unbound_str_format",
        "def helper():\n    pass\n\ndef run():\n    return str.format('{0.__code__}', helper)\n",
        "call", "HG302", r"special attribute '__code__'",
    ),
    _case(
        "string_formatter",
        "import string\n\ndef run():\n    return string.Formatter().get_field('0.__globals__', [run], {})\n",
        "call", "HG303", r"string\.Formatter reads attributes",
    ),
    _case(
        "operator_attrgetter",
        "import operator\n\ndef run():\n    return operator.attrgetter('__globals__')(run)\n",
        "call", "HG303", r"operator\.attrgetter reads attributes",
    ),
    _case(
        "object_getattribute",
        "def run():\n    reader = getattr(object, '__getattribute__')\n    return reader(run, '__globals__')\n",
        "call", "HG302", r"special attribute '__getattribute__'",
    ),
    _case(
        "vars_builtin",
        "class Probe:\n    pass\n\ndef run():\n    return vars(Probe())\n",
        "call", "HG305", r"builtin vars\(\) is withheld",
    ),
    _case(
        "match_class_dunder",
        "def run(value):\n    match value:\n        case object(__class__=found):\n            return found\n",
        "import", "HG306", r'class pattern reads "__class__"',
    ),
    # --- pivots through allowed libraries ----------------------------------------------------
    _case(
        "torch_os_pivot",
        'import torch\ntorch.os.system("touch @MARKER@")\n',
        "import", "HG303", r"module os through torch\.os",
    ),
    _case(
        "torch_load_without_weights_only",
        'import torch\ntorch.load("@MARKER@", weights_only=False)\n',
        "import", "HG314", r"torch\.load needs weights_only=True",
    ),
    _case(
        "torch_hub_load",
        'import torch\ntorch.hub.load("127.0.0.1:@PORT@/evil", "model")\n',
        "import", "HG303", r"torch\.hub",
    ),
    _case(
        "torch_save_writes",
        'import torch\ntorch.save(torch.zeros(1), "@MARKER@")\n',
        "import", "HG303", r"torch\.save writes files",
    ),
    _case(
        "numpy_save_writes",
        'import numpy\nnumpy.save("@MARKER@", numpy.zeros(1))\n',
        "import", "HG303", r"numpy\.save writes files",
    ),
    _case(
        "numpy_tofile_method",
        'import numpy\nnumpy.zeros(2).tofile("@MARKER@")\n',
        "import", "HG307", r"ndarray\.tofile opens or writes files",
    ),
    _case(
        "pathlib_write_text",
        'import pathlib\npathlib.Path("@MARKER@").write_text("pwned")\n',
        "import", "HG307", r"PosixPath\.write_text opens or writes files",
    ),
    _case(
        "timm_module_globals_os",
        'import timm.models._builder as builder\nbuilder.os.system("touch @MARKER@")\n',
        "import", "HG303", r"module os through timm\.models\._builder\.os",
    ),
    _case(
        "timm_module_globals_hub",
        'import timm.models._builder as builder\nbuilder.load_state_dict_from_url("http://127.0.0.1:@PORT@/w.pth")\n',
        "import", "HG303", r"torch\.hub downloads",
    ),
    _case(
        "typing_get_type_hints",
        "import typing\n\nclass Holder:\n    value: \"__import__('os').system('touch @MARKER@')\"\n\n"
        "def run():\n    return typing.get_type_hints(Holder)\n",
        "call", "HG303", r"typing\.get_type_hints evaluates",
    ),
    _case(
        "typing_forward_ref",
        "import typing\n\ndef run():\n    return typing.ForwardRef(\"__import__('os').system('touch @MARKER@')\")\n",
        "call", "HG303", r"typing\.ForwardRef evaluates",
    ),
    _case(
        "functools_update_wrapper_patches_torch",
        "import functools\nimport torch\n\ndef evil(self, *args):\n    return None\n\n"
        "def run():\n    functools.update_wrapper(torch.nn.Module, evil, assigned=('forward',), updated=())\n",
        "call", "HG304", r"changing the class 'Module'",
    ),
    _case(
        "dataclass_on_foreign_class",
        "import dataclasses\nimport torch\n\ndef run():\n    dataclasses.dataclass(torch.nn.Linear)\n",
        "call", "HG304", r"changing the class 'Linear'",
    ),
    # --- module shadowing inside the repository ---------------------------------------------
    _case(
        "repo_torch_module_run_relatively",
        "from . import torch as local_torch\n",
        "import", "HG305", r"builtin open\(\) is withheld",
        torch='handle = open("@MARKER@", "w")\nhandle.write("shadowed")\n',
    ),
    _case(
        "mro_then_subclasses",
        "class Probe:\n    pass\n\ndef run():\n    root = type(Probe()).mro()[-1]\n    return getattr(root, '__subclasses__')()\n",
        "call", "HG302", r"special attribute '__subclasses__'",
    ),
    # --- monkey-patching -------------------------------------------------------------------
    _case(
        "patch_module_forward",
        "import torch\n\ndef evil(self, *args):\n    return None\n\ntorch.nn.Module.forward = evil\n",
        "import", "HG304", r"changing the class 'Module'",
    ),
    _case(
        "patch_functional_module",
        "import torch\ntorch.nn.functional.relu = print\n",
        "import", "HG304", r"changing the module 'torch\.nn\.functional'",
    ),
    _case(
        "setattr_builtin_patch",
        "import torch\nsetattr(torch, 'load', print)\n",
        "import", "HG304", r"changing the module 'torch'",
    ),
    _case(
        "object_setattr_on_module",
        "import torch\n\ndef run():\n    setter = getattr(object, '__setattr__')\n    setter(torch, 'load', print)\n",
        "call", "HG304", r"changing the module 'torch'",
    ),
    _case(
        "augmented_assign_on_module",
        "import math\nmath.pi += 1\n",
        "import", "HG304", r"changing the module 'math'",
    ),
    # --- payloads that run only later ----------------------------------------------------------
    _case(
        "forward_lazy_subprocess",
        "class Model:\n    def forward(self):\n        import subprocess\n        subprocess.run(['touch', '@MARKER@'])\n",
        "forward", "HG301", r"import of 'subprocess' refused",
    ),
    _case(
        "forward_open",
        "class Model:\n    def forward(self):\n        open('@MARKER@', 'w').close()\n",
        "forward", "HG305", r"builtin open\(\) is withheld",
    ),
    _case(
        "forward_numpy_pivot_hook",
        "import numpy\n\nclass Model:\n    def forward(self):\n        writer = getattr(numpy, 'save')\n        writer('@MARKER@', numpy.zeros(1))\n",
        "forward", "HG303", r"numpy\.save writes files",
    ),
    _case(
        "del_os_system",
        "import os\n\nclass Model:\n    def __del__(self):\n        os.system('touch @MARKER@')\n",
        "del", "HG303", r"os\.system is refused",
    ),
    _case(
        "del_socket",
        "class Model:\n    def __del__(self):\n        import socket\n        socket.create_connection(('127.0.0.1', @PORT@))\n",
        "del", "HG301", r"import of 'socket' refused",
    ),
    _case(
        "foreign_forward_hook",
        "import torch\nimport functools\nimport pathlib\n\nclass Model(torch.nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.register_forward_hook(print)\n\n    def forward(self):\n        return 1\n",
        "init", "HG304", r"register_forward_hook got <built-in function print>",
    ),
    _case(
        "foreign_callable_as_forward",
        "import pathlib\nimport torch\n\nclass Model(torch.nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.forward = pathlib.Path('/etc/passwd').read_bytes\n",
        "model_call", "HG308", r"modeling_x\.py:7: reading '/etc/passwd', outside the snapshot",
    ),
    _case(
        "torch_jit_save_native_write",
        "import torch\n\ndef run():\n    torch.jit.save(torch.jit.script(torch.nn.Linear(1, 1)), '@MARKER@')\n",
        "call", "HG303", r"torch\.jit\.save writes files from native code",
    ),
    _case(
        "global_forward_hooks_dict",
        "import torch\n\ndef run():\n    torch.nn.modules.module._global_forward_hooks[0] = print\n",
        "call", "HG303", r"_global_forward_hooks holds hooks that run for every model",
    ),
    _case(
        "stored_path_open_for_later",
        "import functools\nimport pathlib\n\nclass Model:\n    def __init__(self):\n"
        "        self.to_dict = functools.partial(pathlib.Path('@MARKER@').open, 'w')\n",
        "init", "HG307", r"PosixPath\.open opens or writes files",
    ),
    _case(
        "weakref_foreign_callback",
        "import functools\nimport weakref\nimport numpy\n\nclass Model:\n    pass\n\ndef run():\n"
        "    holder = Model()\n    return weakref.ref(holder, functools.partial(print, '@MARKER@'))\n",
        "call", "HG304", r"ReferenceType got the callback functools\.partial",
    ),
    _case(
        "open_memmap_stored_for_later",
        "import functools\nimport numpy.lib.format\n\nclass Model:\n    def __init__(self):\n"
        "        self.to_dict = functools.partial(numpy.lib.format.open_memmap, '@MARKER@', 'w+', 'float32', (1,))\n",
        "init", "HG303", r"numpy\.lib\.format\.open_memmap maps and writes files",
    ),
    _case(
        "shutil_copy",
        "import json\nimport shutil\nshutil.copyfile(json.__file__, '@MARKER@')\n",
        "import", "HG301", r"import of 'shutil' refused: shutil copies, moves and deletes files",
    ),
    _case(
        "torch_load_wrapped_original",
        "import torch\n\ndef run():\n    original = torch.load.__wrapped__\n    return original('@MARKER@', weights_only=False)\n",
        "call", "HG303", r"torch\.serialization unpickles files",
    ),
    _case(
        "guard_method_owner",
        "def run():\n    guards = getattr(getattr, '__self__')\n    return guards.policy\n",
        "call", "HG302", r"special attribute '__self__'",
    ),
    _case(
        "environment_write",
        "import os\n\ndef run():\n    os.environ['HUBGUARD_HOSTILE_MARKER'] = '@MARKER@'\n",
        "call", "HG307", r"os\.putenv refused",
    ),
    # --- class patterns, type() and metaclasses (red team, 2026-12-04) -------------------
    _case(
        "match_reader_from_type_metaclass",
        "import os\n\ndef run():\n"
        "    Meta = type('Meta', (type,), dict(__instancecheck__=lambda cls, obj: True))\n"
        "    Reader = Meta('Reader', (), dict(__match_args__=('system',)))\n"
        "    match os:\n        case Reader(found):\n            found('touch @MARKER@')\n",
        "call", "HG304", r"type\(\) for class 'Meta' sets '__instancecheck__', which a class of sandboxed code may not define",
    ),
    _case(
        "match_reader_from_library_metaclass",
        "import abc\nimport os\n\ndef run():\n"
        "    Meta = abc.ABCMeta('Meta', (abc.ABCMeta,), dict(__instancecheck__=lambda cls, obj: True))\n"
        "    match os:\n        case Meta(system=found):\n            found('touch @MARKER@')\n",
        "call", "HG304", r"ABCMeta\(\) for class 'Meta' sets '__instancecheck__'",
    ),
    _case(
        "match_keyword_pattern_reads_os_system",
        "import os\n\ndef run():\n    match os:\n        case object(system=found):\n            found('touch @MARKER@')\n",
        "call", "HG303", r"a match pattern reaches posix is the native os module",
    ),
    _case(
        "match_keyword_pattern_reads_file_writer",
        "import numpy\n\ndef run():\n    match numpy.zeros(1):\n        case object(tofile=write):\n            write('@MARKER@')\n",
        "call", "HG302", r"class pattern object\(\.\.\.\) reads the attribute 'tofile'",
    ),
    _case(
        "match_mapping_pattern_capture",
        "import torch\n\ndef run():\n    found = list(torch.overrides.get_ignored_functions())\n"
        "    table = dict(zip(map(getattr, found, ['__name__'] * len(found), [''] * len(found)), found))\n"
        "    match table:\n        case {'save': saver}:\n            saver(torch.zeros(1), '@MARKER@')\n",
        "call", "HG303", r"a match pattern reaches torch\.\S+ (unpickles|writes) files",
    ),
    _case(
        "dict_get_on_foreign_values",
        "import torch\n\ndef run():\n    found = list(torch.overrides.get_ignored_functions())\n"
        "    table = dict(zip(map(getattr, found, ['__name__'] * len(found), [''] * len(found)), found))\n"
        "    table.get('save')(torch.zeros(1), '@MARKER@')\n",
        "call", "HG303", r"dict\.get\(\) reaches torch\.\S+ (unpickles|writes) files",
    ),
    _case(
        "max_picks_foreign_value",
        "import itertools\nimport torch\n\ndef run():\n    found = list(torch.overrides.get_ignored_functions())\n"
        "    names = map(getattr, found, ['__name__'] * len(found), [''] * len(found))\n"
        "    savers = itertools.compress(found, map(str.__eq__, names, ['save'] * len(found)))\n"
        "    saver = max(savers, key=id)\n    saver(torch.zeros(1), '@MARKER@')\n",
        "call", "HG303", r"max\(\) reaches torch\.\S+ (unpickles|writes) files",
    ),
    _case(
        "type_three_arguments_reduce_ex",
        "import copy\nimport lzma\n\n"
        "Snapshotter = type('Snapshotter', (object,), dict(__reduce_ex__=lambda self, protocol: (lzma.open, ('@MARKER@', 'wb'))))\n"
        "copy.deepcopy(Snapshotter())\n",
        "import", "HG304", r"type\(\) for class 'Snapshotter' sets '__reduce_ex__'",
    ),
    _case(
        "class_statement_reduce_ex",
        "import copy\nimport lzma\n\nclass Snapshotter:\n"
        "    def __reduce_ex__(self, protocol):\n        return (lzma.open, ('@MARKER@', 'wb'))\n\n"
        "copy.deepcopy(Snapshotter())\n",
        "import", "HG304", r"class statement for class 'Snapshotter' sets '__reduce_ex__'",
    ),
    _case(
        "type_new_called_directly",
        "import copy\nimport lzma\n\n"
        "Snapshotter = type.__new__(type, 'Snapshotter', (), dict(__reduce_ex__=lambda self, protocol: (lzma.open, ('@MARKER@', 'wb'))))\n"
        "copy.deepcopy(Snapshotter())\n",
        "import", "HG304", r"type\.__new__\(\) for class 'Snapshotter' sets '__reduce_ex__'",
    ),
    # --- torch native writers and network ----------------------------------------------
    _case(
        "untyped_storage_from_file",
        "import torch\n\ndef run():\n    torch.UntypedStorage.from_file('@MARKER@', True, 8)\n",
        "call", "HG307", r"from_file opens or writes files",
    ),
    _case(
        "byte_storage_from_file",
        "import torch\n\ndef run():\n    torch.ByteStorage.from_file('@MARKER@', True, 8)\n",
        "call", "HG307", r"from_file opens or writes files",
    ),
    _case(
        "tcpstore_connect",
        "import datetime\nimport torch\n\ndef run():\n"
        "    torch._C._distributed_c10d.TCPStore('127.0.0.1', @PORT@, 1, False, datetime.timedelta(seconds=1))\n",
        "call", "HG303", r"torch\._C\._distributed_c10d opens network connections",
    ),
    _case(
        "jit_trace_lite_interpreter_save",
        "import torch\n\ndef run():\n    traced = torch.jit.trace(torch.nn.Linear(1, 1), torch.zeros(1, 1))\n"
        "    traced._save_for_lite_interpreter('@MARKER@')\n",
        "call", "HG303", r"torch\.jit\.trace builds programs whose save methods write files",
    ),
    # --- callables that host code runs later --------------------------------------------
    _case(
        "threading_register_atexit",
        "import functools\nimport lzma\nimport threading\n\ndef run():\n"
        "    threading._register_atexit(functools.partial(lzma.open, '@MARKER@', 'wb'))\n",
        "call", "HG303", r"threading\._register_atexit is not among the threading members",
    ),
    _case(
        "threading_dummy_thread",
        "import functools\nimport lzma\nimport threading\n\ndef run():\n"
        "    worker = threading._DummyThread()\n    worker._target = functools.partial(lzma.open, '@MARKER@', 'wb')\n",
        "call", "HG303", r"threading\._DummyThread is not among the threading members",
    ),
    _case(
        "thread_class_from_current_thread",
        "import functools\nimport lzma\nimport threading\n\ndef run():\n"
        "    worker = type(threading.current_thread())(target=functools.partial(lzma.open, '@MARKER@', 'wb'))\n"
        "    worker.start()\n",
        "call", "HG303", r"type\(\) reaches threading\._MainThread is not among the threading members",
    ),
    _case(
        "foreign_callable_as_child_train",
        "import collections\nimport functools\nimport lzma\nimport torch\n\n"
        "class Model(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.act = torch.nn.Identity()\n"
        "        cache = collections.defaultdict(functools.partial(lzma.open, '@MARKER@', 'wb'))\n"
        "        self.act.train = cache.__getitem__\n",
        "eval", "HG307", r"modeling_x\.py:11: opening '.*marker' for writing",
    ),
    _case(
        "foreign_callable_setattr_train",
        "import collections\nimport functools\nimport lzma\nimport torch\n\n"
        "class Model(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        cache = collections.defaultdict(functools.partial(lzma.open, '@MARKER@', 'wb'))\n"
        "        setattr(self, 'train', cache.__getitem__)\n",
        "eval", "HG307", r"modeling_x\.py:10: opening '.*marker' for writing",
    ),
    _case(
        "logger_filter_foreign_callable",
        "import collections\nimport functools\nimport logging\nimport lzma\n\ndef run():\n"
        "    cache = collections.defaultdict(functools.partial(lzma.open, '@MARKER@', 'wb'))\n"
        "    logging.getLogger('hubguard.hostile').addFilter(cache.__getitem__)\n",
        "call", "HG304", r"addFilter got .*, a callable that is not sandboxed code",
    ),
    _case(
        "grad_fn_prehook_foreign_callable",
        "import collections\nimport functools\nimport lzma\nimport torch\n\ndef run():\n"
        "    cache = collections.defaultdict(functools.partial(lzma.open, '@MARKER@', 'wb'))\n"
        "    value = torch.ones(1, requires_grad=True) * 2\n    value.grad_fn.register_prehook(cache.__getitem__)\n",
        "call", "HG304", r"register_prehook got .*, a callable that is not sandboxed code",
    ),
    _case(
        "saved_tensors_hooks_foreign_callable",
        "import functools\nimport lzma\nimport torch\n\ndef run():\n"
        "    opener = functools.partial(lzma.open, '@MARKER@', 'wb')\n"
        "    torch.autograd.graph.saved_tensors_hooks(opener, opener).__enter__()\n",
        "call", "HG303", r"saved_tensors_hooks installs callbacks that run later",
    ),
    _case(
        "audit_hook_module_reach",
        "def run():\n    import hubguard.sandbox.audithook\n",
        "call", "HG301", r"import of 'hubguard\.sandbox\.audithook' refused: hubguard\.sandbox is the sandbox itself",
    ),
    _case(
        "staticmethod_foreign_callable_train",
        "import collections\nimport functools\nimport lzma\nimport torch\n\n"
        "class Model(torch.nn.Module):\n"
        "    train = staticmethod(collections.defaultdict(functools.partial(lzma.open, '@MARKER@', 'wb')).__getitem__)\n",
        "eval", "HG307", r"modeling_x\.py:\d+: opening '.*marker' for writing",
    ),
    _case(
        "instance_staticmethod_lru_cache_train",
        "import collections\nimport functools\nimport lzma\nimport torch\n\n"
        "class Model(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        cache = collections.defaultdict(functools.partial(lzma.open, '@MARKER@', 'wb'))\n"
        "        self.train = staticmethod(functools.lru_cache(cache.__getitem__))\n",
        "eval", "HG307", r"modeling_x\.py:10: opening '.*marker' for writing",
    ),
    _case(
        "sort_key_receives_native_writer",
        "import torch\n\ndef run():\n    found = torch.overrides.get_ignored_functions()\n"
        "    sorted(found, key=lambda f: f('@MARKER@', True, 8) if getattr(f, '__name__', '') == 'from_file' else 0)\n",
        "call", "HG30[37]", r"an argument reaches (torch\.\S+ |from_file, which opens or writes files)",
    ),
    _case(
        "operator_getitem_then_call",
        "import operator\nimport torch\n\ndef run():\n    found = list(torch.overrides.get_ignored_functions())\n"
        "    names = list(map(getattr, found, ['__name__'] * len(found), [''] * len(found)))\n"
        "    writer = operator.getitem(found, names.index('from_file'))\n    writer('@MARKER@', True, 8)\n",
        "call", "HG307", r"a call reaches from_file, which opens or writes files from native code",
    ),
    _case(
        "dunder_getitem_then_call",
        "import operator\nimport torch\n\ndef run():\n    found = list(torch.overrides.get_ignored_functions())\n"
        "    names = list(map(getattr, found, ['__name__'] * len(found), [''] * len(found)))\n"
        "    writer = found.__getitem__(names.index('from_file'))\n    writer('@MARKER@', True, 8)\n",
        "call", "HG307", r"a call reaches from_file, which opens or writes files from native code",
    ),
    _case(
        "native_writer_handed_to_map",
        "import operator\nimport torch\n\ndef run():\n    found = list(torch.overrides.get_ignored_functions())\n"
        "    names = list(map(getattr, found, ['__name__'] * len(found), [''] * len(found)))\n"
        "    writer = operator.getitem(found, names.index('from_file'))\n    list(map(writer, ['@MARKER@'], [True], [8]))\n",
        "call", "HG307", r"an argument of a call reaches from_file, which opens or writes files",
    ),
]
