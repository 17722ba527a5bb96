"""``push_to_hub``: save into a temporary folder and upload it as one commit.

The upload goes through ``huggingface_hub``. The repository and the branch are created
when missing, and every file of the folder goes into a single commit. That commit's id
is returned, so the author can publish a pinned reference right away.
"""

from __future__ import annotations

import importlib
import logging
import os
import tempfile
from collections.abc import Callable
from typing import Any

from hubguard.errors import PublishError

logger = logging.getLogger(__name__)


def _hub_errors() -> tuple[type[BaseException], ...]:
    """Return the errors an upload can raise: the Hub's HTTP errors and the HTTP client's transport errors.

    huggingface_hub builds on httpx (``httpx2`` in some builds) or requests, depending on
    its version; the base error class of whichever is installed is included.
    """
    from huggingface_hub.errors import HfHubHTTPError

    errors: list[type[BaseException]] = [HfHubHTTPError, OSError, ValueError]
    for module_name, class_name in (("httpx2", "HTTPError"), ("httpx", "HTTPError"), ("requests", "RequestException")):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        errors.append(getattr(module, class_name))
    return tuple(errors)


def push_folder(
    save: Callable[[str], Any],
    repo_id: str,
    *,
    branch: str | None,
    commit_message: str,
    private: bool | None,
    token: str | None,
    endpoint: str | None,
) -> str:
    """Call ``save(folder)`` on a temporary folder and upload the folder to ``repo_id`` in one commit.

    Returns:
        The 40-hex id of the new commit.

    Raises:
        PublishError: the repository, branch or commit could not be created.
    """
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint, token=token)
    with tempfile.TemporaryDirectory(prefix="hubguard-push-") as folder:
        save(folder)
        files = sorted(
            os.path.relpath(os.path.join(root, name), folder).replace(os.sep, "/")
            for root, _, names in os.walk(folder)
            for name in names
        )
        step = "create the repository"
        try:
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            if branch is not None:
                step = f"create the branch {branch!r}"
                api.create_branch(repo_id, branch=branch, exist_ok=True, repo_type="model")
            step = "create the commit"
            commit = api.upload_folder(
                folder_path=folder,
                repo_id=repo_id,
                repo_type="model",
                revision=branch,
                commit_message=commit_message,
            )
        except _hub_errors() as error:
            raise PublishError(
                f"push_to_hub to {repo_id!r} failed to {step} at {api.endpoint}: {type(error).__name__}: {error}",
                hint="check the repo id, the token's write access (token= or HF_TOKEN) and the endpoint "
                "(endpoint= or HF_ENDPOINT)",
            ) from error

    commit_id = getattr(commit, "oid", None)
    if not isinstance(commit_id, str) or not commit_id:
        raise PublishError(
            f"push_to_hub to {repo_id!r}: the Hub did not return a commit id",
            hint="check the repository on the Hub; the upload may not have happened",
        )
    logger.info("pushed %d file(s) to %s as commit %s", len(files), repo_id, commit_id)
    return commit_id


__all__ = ["push_folder"]
