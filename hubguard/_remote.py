"""The trusted remote-code path: verified bytes -> audit verdict -> trial -> sandboxed import.

The Auto classes call :func:`load_class` when ``config.json`` names a class in
``auto_map`` and the caller granted ``trust_remote_code``. Steps, in order:

1. resolve the ``auto_map`` reference and the policy;
2. fetch the code snapshot (a second repository for ``org/repo--module.Class``);
3. audit every snapshot involved and ask for consent when ``trust_remote_code=None``;
4. check unconditional dependencies before any of the repository's code runs;
5. rehearse the load in the jail when the policy's trial mode requires or allows it;
6. import the closure in the sandbox and return the class.

The audited bytes and the imported bytes come from the same ``Snapshot`` objects.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubguard.errors import (
    ConfigurationError,
    MissingDependencyError,
    PolicyViolation,
    RemoteCodeNotTrustedError,
)
from hubguard.loader.snapshot import Snapshot

logger = logging.getLogger(__name__)

MODEL_AUTO_CLASSES = ("AutoModel", "AutoModelForImageClassification")

# One Policy object per effective policy (its sha256). The sandbox reuses the modules it
# imported for a code id only under the same policy object, and every load reads its
# policy file again, so equal policies must map to one object for the cache to hit.
_POLICIES: dict[str, Any] = {}


@dataclass
class RemoteLoad:
    """The result of one remote-code load: the class, its audit report, the code pins and the stage timings."""

    cls: type
    report: Any
    code_snapshot: Snapshot
    code_revisions: dict[str, str] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)


def auto_map_reference(snapshot: Snapshot, auto_class_name: str) -> str:
    """Return the ``auto_map`` entry of ``auto_class_name`` in the snapshot's ``config.json``.

    Raises:
        ConfigurationError: there is no such entry, or it is not a string.
    """
    auto_map = snapshot.config().get("auto_map") or {}
    value = auto_map.get(auto_class_name)
    if isinstance(value, (list, tuple)):
        value = next((item for item in value if item), None)
    if not isinstance(value, str):
        raise ConfigurationError(
            f"config.json has no auto_map entry for {auto_class_name}",
            path="config.json",
            hint=f'add "{auto_class_name}": "module.Class" to auto_map, or load with a registered class',
        )
    return value


def _audit_command(snapshot: Snapshot) -> str:
    """Return the ``hubguard audit`` command that shows the report of ``snapshot``."""
    if snapshot.source.kind == "local":
        return f"hubguard audit {snapshot.source.display()}"
    return f"hubguard audit {snapshot.source.display()} --revision {snapshot.revision.commit}"


# Code closures (source, code id) the user confirmed on a terminal in this process, so a
# load of a config and then its model shows one prompt.
_CONFIRMED: set[tuple[str, str]] = set()


def _confirm_interactively(report: Any, code_snapshot: Snapshot) -> bool:
    """Show the audit summary on a terminal and ask before loading; refuse elsewhere."""
    key = (code_snapshot.source.display(), code_snapshot.code_id())
    if key in _CONFIRMED:
        return True
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return False
    from hubguard.audit import render

    print(render(report, "text"), file=sys.stderr)
    answer = input(f"Load and run the code of {key[0]} shown above? [y/N] ")
    if answer.strip().lower() not in {"y", "yes"}:
        return False
    _CONFIRMED.add(key)
    return True


def _check_dependencies(report: Any) -> None:
    missing = sorted(report.missing_required())
    if missing:
        raise MissingDependencyError(
            f"remote code needs modules that are not installed: {', '.join(missing)}",
            missing=missing,
            hint="install them (pip install ...) or load another revision; no repository code has run",
        )


def _trial_input_shape(config: dict[str, Any]) -> tuple[int, ...] | None:
    channels = config.get("input_channels", config.get("num_channels"))
    if isinstance(channels, int) and 0 < channels <= 16:
        return (1, channels, 64, 64)
    return None


def run_model_trial(
    code_snapshot: Snapshot,
    policy: Any,
    reference: str,
    config: dict[str, Any],
    report: Any,
    *,
    settings: Any = None,
    weights: Snapshot | None = None,
) -> None:
    """Rehearse the load in the jail as the policy's ``[trial]`` section says; record the trace in ``report``.

    ``jail.run_trial`` decides from the trial settings (``settings``, else ``policy.trial``):
    ``"off"`` skips, ``"if-available"`` runs with the layers the kernel offers, ``"required"``
    raises where one is missing. ``weights`` is the snapshot whose weight files the real load
    reads, when it is not ``code_snapshot`` (code from another repository or commit).

    Raises:
        TrialError: the trial refused the code, failed, or could not run where required.
    """
    settings = settings if settings is not None else policy.trial
    if settings.mode == "off":
        return
    from hubguard.sandbox import jail

    result = jail.run_trial(
        code_snapshot,
        policy,
        reference=reference,
        config=config,
        input_shape=_trial_input_shape(config),
        settings=settings,
        weights=weights if weights is not code_snapshot else None,
    )
    report.trial = result.to_dict()
    result.raise_for_verdict()


def load_class(
    snapshot: Snapshot,
    auto_class_name: str,
    *,
    policy: Any = None,
    lock: str | Path | None = None,
    code_revision: str | None = None,
    trust_remote_code: bool | None = None,
    token: str | None = None,
) -> type:
    """Return the remote class ``auto_map[auto_class_name]`` names, audited and sandboxed.

    Args:
        snapshot: the verified snapshot whose ``config.json`` names the class.
        auto_class_name: ``"AutoConfig"``, ``"AutoModel"`` or ``"AutoModelForImageClassification"``.
        policy: a ``Policy``, a policy name (``"default"``, ``"strict"``) or a file.
        lock: a lock file that pins the code repository's bytes.
        code_revision: the commit to take the code from, when it differs from ``snapshot``'s.
        trust_remote_code: ``True`` loads after a passing audit; ``None`` asks on a
            terminal and refuses elsewhere; ``False`` always refuses.

    Raises:
        RemoteCodeNotTrustedError: trust was not granted.
        PolicyViolation: the audit denied the code; ``error.report`` holds the findings.
        MissingDependencyError: the code needs modules that are not installed.
        TrialError: the jailed trial refused the code or could not run where required.
        SandboxViolation: the code attempted a refused operation while importing.
    """
    loaded = load_remote(
        snapshot,
        auto_class_name,
        policy=policy,
        lock=lock,
        code_revision=code_revision,
        trust_remote_code=trust_remote_code,
        token=token,
    )
    # The model API exposes these as ``model.hubguard_report`` and ``model.hubguard_stage_seconds``.
    loaded.cls.__hubguard_report__ = loaded.report
    loaded.cls.__hubguard_stage_seconds__ = loaded.stage_seconds
    return loaded.cls


def load_remote(
    snapshot: Snapshot,
    auto_class_name: str,
    *,
    policy: Any = None,
    lock: str | Path | None = None,
    code_revision: str | None = None,
    trust_remote_code: bool | None = None,
    token: str | None = None,
) -> RemoteLoad:
    """Run :func:`load_class`'s steps and return the class with its report and timings."""
    from hubguard.audit import audit_snapshots
    from hubguard.audit.policy import Policy, load_policy
    from hubguard.loader import resolve_class_reference
    from hubguard.sandbox import import_snapshot

    source = snapshot.source.display()
    if trust_remote_code is False:
        raise RemoteCodeNotTrustedError(
            f"{source} needs its own code for {auto_class_name} and trust_remote_code is False",
            hint=f"audit it first ({_audit_command(snapshot)}), then pass trust_remote_code=True with that revision",
        )
    timings: dict[str, float] = {}

    # (1) resolve the reference and the policy
    started = time.perf_counter()
    # Names float only under a policy the caller chose, as for the repository's own revision.
    allow_floating = policy is not None
    if not isinstance(policy, Policy):
        policy = load_policy(policy)
    policy = _POLICIES.setdefault(policy.sha256, policy)
    reference = auto_map_reference(snapshot, auto_class_name)

    # (2) fetch the code snapshot
    class_reference = resolve_class_reference(
        snapshot,
        reference,
        code_revision=code_revision,
        allow_floating=allow_floating and policy.revisions.allow_floating,
        lock=lock,
    )
    code_snapshot = class_reference.snapshot
    timings["fetch code"] = time.perf_counter() - started
    logger.info(
        "code for %s: %s at %s, module %s",
        auto_class_name,
        code_snapshot.source.display(),
        code_snapshot.revision.commit,
        class_reference.module_path,
    )

    # (3) audit and consent
    started = time.perf_counter()
    snapshots = [snapshot] if code_snapshot is snapshot else [code_snapshot, snapshot]
    report = audit_snapshots(snapshots, policy)
    timings["audit"] = time.perf_counter() - started
    if report.verdict != "allow":
        blocking = report.blocking_findings()
        shown = "; ".join(f"{finding.rule_id} at {finding.location()}" for finding in blocking[:3])
        more = f" and {len(blocking) - 3} more" if len(blocking) > 3 else ""
        raise PolicyViolation(
            f"the audit of {code_snapshot.source.display()}@{code_snapshot.revision.commit} denied loading: "
            f"{shown}{more}",
            report=report,
            rule_id="HG400",
            hint=f"run `{_audit_command(code_snapshot)}` to read every finding",
        )
    if trust_remote_code is None and not _confirm_interactively(report, code_snapshot):
        raise RemoteCodeNotTrustedError(
            f"{source} needs its own code for {auto_class_name} and it was not confirmed",
            hint=f"read the report (`{_audit_command(code_snapshot)}`), then pass trust_remote_code=True "
            "(CLI: --trust-remote-code), or answer y on a terminal",
        )

    # (4) dependencies, before any repository code runs
    _check_dependencies(report)

    # (5) jailed trial of model classes
    config = snapshot.config()
    if auto_class_name in MODEL_AUTO_CLASSES:
        started = time.perf_counter()
        run_model_trial(code_snapshot, policy, reference.split("--")[-1], config, report, weights=snapshot)
        timings["trial"] = time.perf_counter() - started

    # (6) sandboxed import
    started = time.perf_counter()
    sandboxed = import_snapshot(code_snapshot, policy, report=report)
    cls = sandboxed.get_class(class_reference.module_path, class_reference.class_name)
    timings["sandboxed import"] = time.perf_counter() - started

    code_revisions = {}
    if code_snapshot is not snapshot and code_snapshot.source.kind != "local":
        code_revisions[code_snapshot.source.location] = code_snapshot.revision.commit
    return RemoteLoad(cls=cls, report=report, code_snapshot=code_snapshot, code_revisions=code_revisions, stage_seconds=timings)
