"""Turn a requested revision into a :class:`PinnedRevision`, refusing names unless floating is allowed.

A revision is pinned only when it is a full 40-hex git commit id. Branch names, tags,
short ids and a missing revision are resolved once, by the source, to the commit they
name right now. By default that commit is printed in an :class:`UnpinnedRevisionError`
so the user can pin it; with ``allow_floating=True`` the resolved commit is recorded
in the returned :class:`PinnedRevision` and every later fetch uses that commit.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from hubguard.errors import UnpinnedRevisionError
from hubguard.loader.snapshot import PinnedRevision

logger = logging.getLogger(__name__)

_FULL_COMMIT = re.compile(r"[0-9a-fA-F]{40}")
_CONTENT_ID = re.compile(r"sha256:[0-9a-f]{64}")


def is_full_commit(value: str | None) -> bool:
    """Tell whether ``value`` is a full 40-hex git commit id (either case)."""
    return value is not None and _FULL_COMMIT.fullmatch(value) is not None


def is_content_id(value: str | None) -> bool:
    """Tell whether ``value`` is a plain folder's content id, ``sha256:<64 hex>``."""
    return value is not None and _CONTENT_ID.fullmatch(value) is not None


def pin_revision(
    requested: str | None,
    *,
    source: str,
    resolve: Callable[[str | None], str],
    allow_floating: bool,
) -> PinnedRevision:
    """Pin ``requested`` for ``source``, resolving a name through ``resolve`` at most once.

    Args:
        requested: the revision the user gave, or ``None`` for the default branch.
        source: the source as the user spelled it, for messages.
        resolve: returns the full commit id a name (or ``None``) points to now; it
            raises :class:`~hubguard.errors.RevisionNotFoundError` for unknown names.
        allow_floating: record the resolved commit instead of refusing a name.

    Raises:
        UnpinnedRevisionError: ``requested`` is not a full commit id and floating is not allowed.
    """
    if requested is not None and is_full_commit(requested):
        return PinnedRevision(requested=requested, commit=requested.lower())

    resolved = resolve(requested)
    if not allow_floating:
        raise unpinned_error(requested, resolved, source=source)
    logger.warning(
        "revision %s of %s is not pinned; using the commit it resolves to now, %s",
        "(default branch)" if requested is None else repr(requested),
        source,
        resolved,
    )
    return PinnedRevision(requested=requested, commit=resolved, floating=True)


# How to follow a branch or tag instead of pinning, for every entry point.
_FLOATING_HINT = (
    "to follow the name instead and record the commit it resolves to, allow floating revisions: "
    "allow_floating=True in Python, --allow-floating for hubguard lock, or a policy file with "
    "[revisions] allow_floating = true (--policy FILE) for hubguard audit and hubguard load"
)


def unpinned_error(requested: str | None, resolved: str | None, *, source: str) -> UnpinnedRevisionError:
    """Build the error for an unpinned revision, naming the commit to pin when it is known."""
    what = "No revision was given" if requested is None else f"Revision {requested!r} is not pinned"
    if resolved is None:
        return UnpinnedRevisionError(
            f"{what} for {source}; a full 40-character commit id is required.",
            requested=requested,
            resolved=None,
            rule_id="HG101",
            hint=f"pass revision=\"<commit>\" (CLI: --revision <commit>) with a full commit id; {_FLOATING_HINT}",
        )
    return UnpinnedRevisionError(
        f"{what} for {source}: it resolves to {resolved} now; "
        f'pass revision="{resolved}" (CLI: --revision {resolved}).',
        requested=requested,
        resolved=resolved,
        rule_id="HG101",
        hint=f"review that commit before pinning it; {_FLOATING_HINT}",
    )


__all__ = ["is_content_id", "is_full_commit", "pin_revision", "unpinned_error"]
