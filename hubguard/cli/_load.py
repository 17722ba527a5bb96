"""``hubguard load``: run the whole path (fetch, audit, trial, sandboxed import, weights) on one source."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from hubguard.cli._errors import EXIT_OK, EXIT_USAGE
from hubguard.cli._progress import stage
from hubguard.errors import HubguardError

logger = logging.getLogger(__name__)

AUTO_CLASSES = ("AutoModel", "AutoModelForImageClassification", "AutoConfig")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "load",
        help="fetch, audit, sandbox and instantiate a model; optionally classify an image",
        description=(
            "Run the whole loading path on SOURCE and print the verdict, the model class, the "
            "parameter count and the time of each stage. Exit codes: 0 loaded, 1 denied or the model "
            "failed on --image, 2 usage or policy-file error, 3 fetch or integrity failure."
        ),
    )
    parser.add_argument("source", help="Hub repo id (org/name), local folder, or git+https:// / git+file:// URL")
    parser.add_argument("--revision", help="full 40-character commit id to load")
    parser.add_argument("--code-revision", help="commit to take the code from, when it differs from --revision")
    parser.add_argument("--policy", help="policy name (default, strict) or TOML file; default: default")
    parser.add_argument("--lock", help="lock file that pins every byte (see hubguard lock)")
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow the repository's own code to run (sandboxed) once the audit allows it",
    )
    parser.add_argument(
        "--auto-class",
        choices=AUTO_CLASSES,
        default="AutoModelForImageClassification",
        help="which Auto class loads the model (default: AutoModelForImageClassification)",
    )
    parser.add_argument(
        "--image",
        type=Path,
        help="classify this image file and print the top-5 classes (checked before anything loads; exit code 2 "
        "when it is not a file)",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    return parser


def _auto_class(name: str) -> Any:
    import hubguard

    return getattr(hubguard, name)


def _inner_timm_model(model: Any) -> Any:
    """Return the first submodule that carries timm's data configuration, else the model itself."""
    for module in model.modules():
        if hasattr(module, "pretrained_cfg") or hasattr(module, "default_cfg"):
            return module
    return model


def classify_image(model: Any, image_path: Path, *, top_k: int = 5) -> list[dict[str, Any]]:
    """Run ``model`` on one image, resized and normalised the way timm's data config says.

    Returns the ``top_k`` classes as ``{"index", "label", "probability"}``, best first.
    """
    import timm.data
    import torch
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(image_path).convert("RGB")
    except (OSError, UnidentifiedImageError) as error:
        raise HubguardError(f"cannot read image {image_path}: {error}", hint="pass a PNG or JPEG file") from error
    try:
        data_config = timm.data.resolve_data_config({}, model=_inner_timm_model(model))
        transform = timm.data.create_transform(**data_config)
        batch = transform(image).unsqueeze(0)
        with torch.no_grad():
            output = model(batch)
        logits = output["logits"] if isinstance(output, dict) else output
        probabilities = torch.softmax(logits[0], dim=-1)
        values, indices = probabilities.topk(min(top_k, probabilities.numel()))
    except HubguardError:
        raise
    except Exception as error:  # the model's own code runs here; any failure is the model's
        raise HubguardError(
            f"running {type(model).__qualname__} on {image_path} failed: {type(error).__name__}: {error}",
            hint="--image needs an image-classification model that takes a [1, 3, H, W] batch and returns "
            "logits; leave out --image to only load the model",
        ) from error
    id2label = getattr(model.config, "id2label", None) or {}
    return [
        {
            "index": int(index),
            "label": str(id2label.get(int(index), id2label.get(str(int(index)), f"class {int(index)}"))),
            "probability": float(value),
        }
        for value, index in zip(values, indices)
    ]


def run(args: argparse.Namespace) -> int:
    if args.image is not None and args.auto_class == "AutoConfig":
        print("hubguard: error: --image needs a model class, not AutoConfig", file=sys.stderr)
        return EXIT_USAGE
    if args.image is not None and not args.image.is_file():
        problem = "is not a file" if args.image.exists() else "does not exist"
        print(f"hubguard: error: --image {args.image} {problem}\n  fix: pass a PNG or JPEG file", file=sys.stderr)
        return EXIT_USAGE
    trust: bool | None = True if args.trust_remote_code else None
    auto_class = _auto_class(args.auto_class)

    started = time.perf_counter()
    # Without --trust-remote-code the load may ask on the terminal, and a spinner would
    # overwrite the question.
    with stage(f"loading {args.source}", spinner=trust is True):
        loaded = auto_class.from_pretrained(
            args.source,
            revision=args.revision,
            code_revision=args.code_revision,
            policy=args.policy,
            lock=args.lock,
            trust_remote_code=trust,
        )
    total = time.perf_counter() - started

    report = getattr(loaded, "hubguard_report", None)
    stages = dict(getattr(loaded, "hubguard_stage_seconds", {}) or {})
    stages["total"] = total
    result: dict[str, Any] = {
        "source": args.source,
        "revision": getattr(report, "resolved_revision", args.revision) if report is not None else args.revision,
        "verdict": report.verdict if report is not None else "allow (no remote code)",
        "class": f"{type(loaded).__module__}.{type(loaded).__qualname__}",
        "seconds": {name: round(value, 3) for name, value in stages.items()},
    }
    if hasattr(loaded, "num_parameters"):
        result["parameters"] = loaded.num_parameters()
    if args.image is not None:
        with stage("classifying image"):
            result["top5"] = classify_image(loaded, args.image)

    if args.format == "json":
        print(json.dumps(result, indent=2, sort_keys=True))
        return EXIT_OK
    print(f"verdict:    {result['verdict']}")
    print(f"class:      {result['class']}")
    if "parameters" in result:
        print(f"parameters: {result['parameters']:,}")
    for name, seconds in result["seconds"].items():
        print(f"time {name + ':':<18}{seconds:8.3f} s")
    for rank, entry in enumerate(result.get("top5", []), start=1):
        print(f"top-{rank}: {entry['label']:<24} {entry['probability']:.4f}")
    return EXIT_OK
