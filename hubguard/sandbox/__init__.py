"""Import verified remote code in an isolated namespace, compiled and guarded by hubguard.

Three layers, each described in ``docs/sandbox.md``:

1. :mod:`~hubguard.sandbox.compiler`: RestrictedPython with hubguard's policy for model
   code; refuses frame and interpreter internals at compile time and routes every
   attribute, item, iteration and write through the guards.
2. :mod:`~hubguard.sandbox.guards`: runtime checks the compiled code calls itself, so
   they hold in ``forward``, ``__del__`` and callbacks long after the import.
3. :mod:`~hubguard.sandbox.audithook`: a PEP 578 hook that refuses file writes, reads
   outside the snapshot, network, processes, native code and new code while sandboxed
   code is on the stack, also when an allowed library does it on the code's behalf.

Example:
    >>> code = import_snapshot(snapshot, load_policy("default"), report=events)
    >>> ModelClass = code.get_class("modeling_x.py", "XModel")
"""

from __future__ import annotations

from hubguard.sandbox.importer import SandboxedCode, import_snapshot, namespace_of


def unload(code: SandboxedCode) -> None:
    """Remove a loaded snapshot's modules from ``sys.modules`` (same as ``code.unload()``)."""
    code.unload()


__all__ = ["SandboxedCode", "import_snapshot", "namespace_of", "unload"]
