"""SARIF 2.1.0 report, in the shape GitHub code scanning accepts (``upload-sarif``).

Each rule carries ``security-severity`` and CWE tags, each result a region with a start
line of at least 1 (whole-file findings point at line 1) and a ``partialFingerprints``
entry, so code scanning can track an alert across commits.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from hubguard.audit.findings import RULES, Severity

if TYPE_CHECKING:
    from hubguard.audit.report import AuditReport

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/hubguard/hubguard"
_SECURITY_SEVERITY = {
    Severity.INFO: "0.0",
    Severity.LOW: "3.0",
    Severity.MEDIUM: "5.5",
    Severity.HIGH: "8.0",
    Severity.CRITICAL: "9.5",
}


def _level(finding: dict[str, Any]) -> str:
    if finding["blocking"]:
        return "error"
    return "note" if finding["severity"] == "info" else "warning"


def _rule(rule_id: str, example: dict[str, Any]) -> dict[str, Any]:
    info = RULES.get(rule_id)
    name = info.name if info is not None else f"bandit-{rule_id}"
    description = info.description if info is not None else example["message"]
    cwe = example["cwe"] if info is None else info.cwe
    tags = ["security"] + ([f"external/cwe/cwe-{cwe}"] if cwe else [])
    return {
        "id": rule_id,
        "name": name,
        "shortDescription": {"text": description},
        "fullDescription": {"text": description},
        "help": {"text": f"{description} The policy key in each result names the setting that decides it."},
        "properties": {
            "tags": tags,
            "security-severity": _SECURITY_SEVERITY[Severity.parse(example["severity"])],
            "source": example["source"],
        },
    }


def render(report: AuditReport) -> str:
    """Return the report as a SARIF 2.1.0 log with one run."""
    data = report.to_dict()
    findings = data["findings"]
    rule_ids = sorted({item["rule_id"] for item in findings})
    first_by_rule = {}
    for item in findings:
        current = first_by_rule.get(item["rule_id"])
        if current is None or Severity.parse(item["severity"]) > Severity.parse(current["severity"]):
            first_by_rule[item["rule_id"]] = item
    rules = [_rule(rule_id, first_by_rule[rule_id]) for rule_id in rule_ids]
    index = {rule_id: position for position, rule_id in enumerate(rule_ids)}
    results = []
    for item in findings:
        region: dict[str, Any] = {"startLine": max(item["line"], 1)}
        if item["line"] > 0 and item["column"] > 0:
            region["startColumn"] = item["column"]
        if item["snippet"]:
            region["snippet"] = {"text": item["snippet"]}
        fingerprint = hashlib.sha256(
            "\0".join((item["rule_id"], item["path"], item["snippet"], item["message"])).encode()
        ).hexdigest()
        results.append(
            {
                "ruleId": item["rule_id"],
                "ruleIndex": index[item["rule_id"]],
                "level": _level(item),
                "message": {"text": f"{item['message']} [policy key: {item['policy_key']}]"},
                "locations": [
                    {"physicalLocation": {"artifactLocation": {"uri": item["path"]}, "region": region}}
                ],
                "partialFingerprints": {"hubguardFindingHash/v1": fingerprint},
                "properties": {
                    "severity": item["severity"],
                    "confidence": item["confidence"],
                    "verdict": item["verdict"],
                    "policy_key": item["policy_key"],
                    "source": item["source"],
                },
            }
        )
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "hubguard",
                        "version": data["tool"]["hubguard"],
                        "semanticVersion": data["tool"]["hubguard"],
                        "informationUri": INFORMATION_URI,
                        "rules": rules,
                    }
                },
                "invocations": [{"executionSuccessful": True, "endTimeUtc": data["created_at"]}],
                "artifacts": [
                    {"location": {"uri": item["path"]}, "length": item["size"], "hashes": {"sha-256": item["sha256"]}}
                    for item in data["files"]
                ],
                "results": results,
                "properties": {
                    "schema_version": data["schema_version"],
                    "source": data["source"],
                    "source_summary": data["source_summary"],
                    "requested_revision": data["requested_revision"],
                    "resolved_revision": data["resolved_revision"],
                    "policy": data["policy"],
                    "verdict": data["verdict"],
                    "unsafe": data["unsafe"],
                    "bandit_version": data["tool"]["bandit"],
                    "dependencies": data["dependencies"],
                    **({"trial": data["trial"]} if "trial" in data else {}),
                },
            }
        ],
    }
    return json.dumps(log, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
