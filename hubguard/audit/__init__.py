"""Static audit of remote code: hubguard's AST rules plus bandit, decided by one policy.

The audit reads the verified bytes of :class:`~hubguard.loader.snapshot.Snapshot` objects
and never imports or executes them. It scans every file of the code closure
(``Snapshot.code_paths``), checks the weight files, and returns one :class:`AuditReport`.

Example::

    report = hubguard.audit("acme/tiny", revision="3f2a…", policy="strict")
    print(render(report, "text"))
    report.raise_for_verdict()
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
import types
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from hubguard._version import __version__
from hubguard.audit import _cache
from hubguard.audit._bandit import bandit_version, run_bandit
from hubguard.audit.engine import FileScan, ImportRecord, parse_source, scan_source
from hubguard.audit.findings import Confidence, Finding, Severity
from hubguard.audit.policy import Policy, load_policy
from hubguard.audit.report import AuditedFile, AuditedSource, AuditReport, Dependencies
from hubguard.audit.weights import WeightFile, scan_weights
from hubguard.errors import TrialError, UnsafeRepositoryError
from hubguard.loader.snapshot import Snapshot

logger = logging.getLogger(__name__)

ReportFormat = Literal["text", "json", "sarif", "markdown"]
FORMATS: tuple[str, ...] = ("text", "json", "sarif", "markdown")


def audit(
    source: str,
    *,
    revision: str | None = None,
    policy: Policy | str | Path | None = None,
    lock: str | Path | None = None,
    code_revision: str | None = None,
    trial: bool = False,
    unsafe_skip_bandit: bool = False,
) -> AuditReport:
    """Fetch ``source`` at a pinned revision and audit it, with the code repositories it references.

    ``auto_map`` entries of the form ``org/repo--module.Class`` point at code in another
    repository; that code is fetched at ``code_revision`` (or its lock entry) and audited in
    the same report, because it is what a load would run.

    Args:
        source: a Hub repo id, a local folder, a ``git+…`` URL, or a single ``.py`` file.
        revision: the commit to audit (see :func:`hubguard.loader.fetch` for what floats).
        policy: a :class:`Policy`, ``"default"``, ``"strict"`` or a policy file.
        lock: a lock file that pins the bytes.
        code_revision: the commit of the code repository that ``auto_map`` references.
        trial: also rehearse loading the first model class of ``auto_map`` in the jailed
            child (``hubguard.sandbox.jail``) and put its trace in ``report.trial``; a
            policy whose trial mode is ``"off"`` is run as ``"if-available"`` here.
        unsafe_skip_bandit: skip bandit (hubguard's own rules still run); the report is
            marked ``unsafe`` and a warning is logged.

    Raises:
        PolicyFileError: the policy file is invalid.
        FetchError: the source cannot be fetched or its bytes do not match the pin.
        UnpinnedRevisionError: a referenced code repository has no pin.
    """
    policy = load_policy(policy)
    started = time.perf_counter()
    snapshot = _fetch(source, revision=revision, lock=lock, policy=policy)
    code_snapshots = _referenced_code(snapshot, policy=policy, lock=lock, code_revision=code_revision)
    fetch_seconds = time.perf_counter() - started
    report = audit_snapshots([snapshot, *code_snapshots], policy, unsafe_skip_bandit=unsafe_skip_bandit)
    report.stage_seconds["fetch"] = fetch_seconds
    if trial:
        started = time.perf_counter()
        _run_trial(snapshot, report, policy=policy, lock=lock, code_revision=code_revision)
        report.stage_seconds["trial"] = time.perf_counter() - started
    return report


_MODEL_AUTO_CLASS_PREFIX = "AutoModel"


def _auto_map_references(snapshot: Snapshot) -> list[tuple[str, str]]:
    """Return ``(auto class, reference)`` pairs of ``config.json``'s ``auto_map``, in file order."""
    if "config.json" not in snapshot.files:
        return []
    auto_map = snapshot.config().get("auto_map") or {}
    pairs = []
    for auto_class, value in auto_map.items():
        items = value if isinstance(value, (list, tuple)) else [value]
        pairs.extend((auto_class, item) for item in items if isinstance(item, str))
    return pairs


def _referenced_code(
    snapshot: Snapshot, *, policy: Policy, lock: str | Path | None, code_revision: str | None
) -> list[Snapshot]:
    """Fetch each other repository whose code ``auto_map`` references, once per repository."""
    from hubguard.loader import resolve_class_reference

    found: dict[str, Snapshot] = {}
    for _, reference in _auto_map_references(snapshot):
        repo = reference.partition("--")[0] if "--" in reference else None
        if repo is None or repo in found:
            continue
        resolved = resolve_class_reference(
            snapshot, reference, code_revision=code_revision, allow_floating=policy.revisions.allow_floating, lock=lock
        )
        found[repo] = resolved.snapshot
    return list(found.values())


def _run_trial(
    snapshot: Snapshot, report: AuditReport, *, policy: Policy, lock: str | Path | None, code_revision: str | None
) -> None:
    """Rehearse the first model class of ``auto_map`` in the jail and record the result in ``report.trial``."""
    import dataclasses

    from hubguard._remote import run_model_trial
    from hubguard.loader import resolve_class_reference

    models = [(name, ref) for name, ref in _auto_map_references(snapshot) if name.startswith(_MODEL_AUTO_CLASS_PREFIX)]
    if not models:
        report.trial = {"verdict": "skipped", "reason": "auto_map names no model class to rehearse"}
        return
    _, reference = models[0]
    resolved = resolve_class_reference(
        snapshot, reference, code_revision=code_revision, allow_floating=policy.revisions.allow_floating, lock=lock
    )
    settings = policy.trial
    if settings.mode == "off":
        settings = dataclasses.replace(settings, mode="if-available")
    try:
        run_model_trial(
            resolved.snapshot, policy, reference.split("--")[-1], snapshot.config(), report, settings=settings, weights=snapshot
        )
    except TrialError:
        # The verdict and the trace are in report.trial; the audit still returns its report.
        pass


def _fetch(source: str, *, revision: str | None, lock: str | Path | None, policy: Policy) -> Snapshot:
    from hubguard.loader import fetch

    path = Path(source)
    if path.is_file() and path.suffix == ".py":
        return snapshot_of_paths([path])[0]
    require_lock = policy.revisions.local_requires_lock and path.is_dir()
    return fetch(
        source,
        revision=revision,
        lock=lock,
        allow_floating=policy.revisions.allow_floating,
        require_lock=require_lock,
        include_weights=True,
    )


def snapshot_of_paths(paths: Sequence[Path]) -> list[Snapshot]:
    """Build snapshots for local folders and ``.py`` files, covering every ``.py`` file named.

    Used by ``hubguard scan``: code under development is scanned whole, not only the
    ``auto_map`` closure. Each folder is one snapshot, weight files included. Files are
    grouped into one snapshot per folder. Their ``.py`` siblings are included so that
    relative imports resolve, but only the named files and their closure are scanned.

    Raises:
        FetchError: a path does not exist or holds unsafe content.
    """
    from hubguard.loader import fetch
    from hubguard.loader.snapshot import PinnedRevision, SourceRef, build_snapshot

    snapshots = []
    files_by_folder: dict[Path, list[Path]] = {}
    for path in paths:
        path = path.resolve()
        if path.is_file():
            files_by_folder.setdefault(path.parent, []).append(path)
            continue
        snapshot = fetch(str(path), allow_floating=True, include_weights=True)
        every_module = tuple(sorted(name for name, entry in snapshot.files.items() if entry.kind == "code"))
        if set(every_module) != set(snapshot.code_paths):
            snapshot = replace(snapshot, code_paths=every_module)
        snapshots.append(snapshot)
    for folder, files in sorted(files_by_folder.items()):
        contents = {sibling.name: sibling.read_bytes() for sibling in sorted(folder.glob("*.py")) if sibling.is_file()}
        for path in files:
            contents[path.name] = path.read_bytes()
        digest = hashlib.sha256()
        for name, data in sorted(contents.items()):
            digest.update(name.encode() + b"\0" + hashlib.sha256(data).hexdigest().encode() + b"\n")
        location = str(files[0]) if len(files) == 1 else str(folder)
        snapshots.append(
            build_snapshot(
                SourceRef("local", location),
                PinnedRevision(None, "sha256:" + digest.hexdigest()),
                contents,
                code_entries=sorted({path.name for path in files}),
            )
        )
    return snapshots


def audit_snapshots(
    snapshots: Sequence[Snapshot],
    policy: Policy | str | Path | None = None,
    *,
    unsafe_skip_bandit: bool = False,
) -> AuditReport:
    """Audit verified snapshots (the code repository first) and return one report.

    Every file of each snapshot's code closure is scanned with hubguard's rules and with
    bandit; weight files are checked without loading them. Scan results are cached per file
    on its content hash, the policy hash and the tool versions.
    """
    policy = load_policy(policy)
    timings = {"hubguard rules": 0.0, "bandit": 0.0, "weights": 0.0}
    bandit = bandit_version()
    if unsafe_skip_bandit:
        logger.warning("UNSAFE: bandit is skipped on request; the report is marked unsafe")
        bandit = "skipped"
    sources: list[AuditedSource] = []
    files: list[AuditedFile] = []
    findings: list[Finding] = []
    imports: list[ImportRecord] = []
    weights: list[WeightFile] = []
    for index, snapshot in enumerate(snapshots):
        prefix = "" if index == 0 else f"{snapshot.source.display()}::"
        sources.append(
            AuditedSource(
                source=snapshot.source.display(),
                kind=snapshot.source.kind,
                requested_revision=snapshot.revision.requested,
                resolved_revision=snapshot.revision.commit,
                floating=snapshot.revision.floating,
            )
        )
        code = set(snapshot.code_paths)
        for path, entry in sorted(snapshot.files.items()):
            files.append(AuditedFile(prefix + path, entry.sha256, entry.size, entry.kind, scanned=path in code))
        for path in sorted(code):
            scan = _scan_file(snapshot, path, policy, bandit, timings, skip_bandit=unsafe_skip_bandit)
            findings.extend(_prefixed(scan.findings, prefix))
            imports.extend(replace(record, path=prefix + record.path) if prefix else record for record in scan.imports)
        started = time.perf_counter()
        listed, weight_findings = scan_weights(snapshot, policy)
        timings["weights"] += time.perf_counter() - started
        weights.extend(replace(weight, path=prefix + weight.path) if prefix else weight for weight in listed)
        findings.extend(_prefixed(weight_findings, prefix))
        for rejected in snapshot.rejected:
            findings.append(_rejected_finding(prefix + rejected.path, rejected.reason))
    report = AuditReport(
        sources=tuple(sources),
        files=tuple(files),
        imports=tuple(imports),
        findings=tuple(sorted(findings)),
        weights=tuple(weights),
        policy_name=policy.name,
        policy_sha256=policy.sha256,
        hubguard_version=__version__,
        bandit_version=bandit,
        fail_on=Severity.parse(policy.audit.fail_on),
        stage_seconds=timings,
        created_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        dependencies=Dependencies.from_imports(imports),
        unsafe=unsafe_skip_bandit,
    )
    logger.info(
        "audit of %s with policy %s: %s (%d findings, %d blocking)",
        report.source,
        policy.name,
        report.verdict,
        len(report.findings),
        len(report.blocking_findings()),
    )
    return report


def _prefixed(findings: Sequence[Finding], prefix: str) -> list[Finding]:
    if not prefix:
        return list(findings)
    return [replace(finding, path=prefix + finding.path) for finding in findings]


def _rejected_finding(path: str, reason: str) -> Finding:
    return Finding(
        path=path,
        line=0,
        column=0,
        rule_id="HG244",
        severity=Severity.INFO,
        confidence=Confidence.HIGH,
        cwe=None,
        message=f"file is never loaded: {reason}",
        snippet="",
        policy_key="loader",
        verdict="warn",
    )


def _scan_file(
    snapshot: Snapshot, path: str, policy: Policy, bandit: str, timings: dict[str, float], *, skip_bandit: bool
) -> FileScan:
    sha256 = snapshot.files[path].sha256
    key = _cache.scan_key(path, sha256, policy_sha256=policy.sha256, hubguard_version=__version__, bandit_version=bandit)
    cached = _cache.get(key)
    if cached is not None:
        logger.debug("audit cache hit for %s (%s)", path, sha256[:12])
        return cached

    started = time.perf_counter()
    try:
        text = snapshot.read_text(path)
    except UnsafeRepositoryError as error:
        finding = Finding(
            path=path,
            line=error.line or 0,
            column=0,
            rule_id="HG232",
            severity=Severity.HIGH,
            confidence=Confidence.HIGH,
            cwe=838,
            message=error.message,
            snippet="",
            policy_key="audit",
            verdict="deny",
        )
        scan = FileScan(path, (finding,), (), 0, parsed=False)
        _cache.put(key, scan)
        return scan
    tree, problem = parse_source(text, path, policy)
    scan = scan_source(text, path, policy, tree=tree) if tree is not None else None
    timings["hubguard rules"] += time.perf_counter() - started
    if scan is None:
        assert problem is not None
        line_count = text.count("\n") + 1
        scan = FileScan(path, (problem,), (), line_count, parsed=False)
    elif not skip_bandit:
        started = time.perf_counter()
        bandit_findings = run_bandit(text, path, policy)
        timings["bandit"] += time.perf_counter() - started
        if bandit_findings:
            scan = replace(scan, findings=tuple(sorted([*scan.findings, *bandit_findings])))
    _cache.put(key, scan)
    return scan


def render(report: AuditReport, format: ReportFormat = "text") -> str:  # noqa: A002 - the documented keyword
    """Render a report as ``text`` (a rich table), ``json``, ``sarif`` (2.1.0) or ``markdown``.

    Raises:
        ValueError: ``format`` is not one of ``FORMATS``.
    """
    from hubguard.audit.formats import renderer

    return renderer(format)(report)


class _CallableModule(types.ModuleType):
    """Module type that makes ``hubguard.audit(...)`` call :func:`audit`.

    Importing ``hubguard.audit.policy`` binds the attribute ``hubguard.audit`` to this
    package, which would hide the function that ``hubguard`` exports under the same name.
    """

    def __call__(self, source: str, **options: Any) -> AuditReport:
        return audit(source, **options)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["AuditReport", "FORMATS", "Finding", "Policy", "Severity", "audit", "audit_snapshots", "load_policy", "render", "snapshot_of_paths"]
