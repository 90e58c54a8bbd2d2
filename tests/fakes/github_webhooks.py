"""GitHub webhook deliveries as GitHub sends them: the payload shapes of GitHub's documented examples
(``github/docs`` src/webhooks/data/fpt/push.json, deployment_status.json, workflow_run.json), the delivery headers,
and the ``X-Hub-Signature-256`` HMAC of the raw body."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

import httpx


def _repository(full_name: str) -> dict[str, Any]:
    owner, name = full_name.split("/")
    return {
        "id": 1296269,
        "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
        "name": name,
        "full_name": full_name,
        "private": True,
        "owner": {"login": owner, "id": 1, "type": "Organization"},
        "html_url": f"https://github.com/{full_name}",
        "default_branch": "main",
    }


def _user(login: str) -> dict[str, Any]:
    return {
        "login": login,
        "id": 583231,
        "node_id": "MDQ6VXNlcjU4MzIzMQ==",
        "type": "User",
        "site_admin": False,
    }


def push_tag(
    full_name: str, tag: str, sha: str, *, login: str = "octocat", tag_object: str | None = None
) -> dict[str, Any]:
    """A ``push`` of a new tag. ``after`` is the tag object for an annotated tag; ``head_commit`` is the commit."""
    return {
        "ref": f"refs/tags/{tag}",
        "before": "0" * 40,
        "after": tag_object or sha,
        "repository": _repository(full_name),
        "pusher": {"name": login, "email": f"{login}@users.noreply.github.com"},
        "sender": _user(login),
        "installation": {"id": 4242, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNDI0Mg=="},
        "created": True,
        "deleted": False,
        "forced": False,
        "base_ref": "refs/heads/main",
        "compare": f"https://github.com/{full_name}/compare/{tag}",
        "commits": [],
        "head_commit": {
            "id": sha,
            "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433",
            "distinct": True,
            "message": "Release",
            "timestamp": "2026-12-06T10:00:00+09:00",
            "url": f"https://github.com/{full_name}/commit/{sha}",
            "author": {"name": login, "email": f"{login}@users.noreply.github.com", "username": login},
            "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"},
            "added": [],
            "removed": [],
            "modified": ["CHANGELOG.md"],
        },
    }


def delete_tag(full_name: str, tag: str, sha: str, *, login: str = "octocat") -> dict[str, Any]:
    """A ``push`` deleting a tag: ``deleted`` true, ``after`` forty zeros, no ``head_commit``."""
    payload = push_tag(full_name, tag, sha, login=login)
    return payload | {
        "before": sha,
        "after": "0" * 40,
        "created": False,
        "deleted": True,
        "head_commit": None,
    }


def deployment_status(
    full_name: str,
    sha: str,
    environment: str,
    state: str,
    *,
    ref: str = "main",
    login: str = "github-actions[bot]",
) -> dict[str, Any]:
    return {
        "action": "created",
        "deployment_status": {
            "id": 2,
            "state": state,
            "creator": _user(login),
            "description": "",
            "environment": environment,
            "target_url": f"https://github.com/{full_name}/actions/runs/42",
            "log_url": f"https://github.com/{full_name}/actions/runs/42",
            "environment_url": f"https://{environment}.example.com",
            "created_at": "2026-12-06T01:00:00Z",
            "updated_at": "2026-12-06T01:00:00Z",
        },
        "deployment": {
            "id": 1,
            "sha": sha,
            "ref": ref,
            "task": "deploy",
            "payload": {},
            "environment": environment,
            "creator": _user(login),
            "created_at": "2026-12-06T00:59:00Z",
        },
        "repository": _repository(full_name),
        "sender": _user(login),
    }


def workflow_run(
    full_name: str, sha: str, *, name: str = "CI", conclusion: str = "success", branch: str = "main"
) -> dict[str, Any]:
    return {
        "action": "completed",
        "workflow_run": {
            "id": 30433642,
            "name": name,
            "head_branch": branch,
            "head_sha": sha,
            "event": "push",
            "status": "completed",
            "conclusion": conclusion,
            "run_attempt": 1,
            "html_url": f"https://github.com/{full_name}/actions/runs/30433642",
            "pull_requests": [],
        },
        "workflow": {"id": 159038, "name": name},
        "repository": _repository(full_name),
        "sender": _user("octocat"),
    }


def deliver(
    http: httpx.Client,
    url: str,
    event: str,
    payload: dict[str, Any] | bytes,
    *,
    secret: str | None,
    delivery: str | None = None,
    signature: str | None = None,
) -> httpx.Response:
    """POST a delivery the way GitHub does: JSON, the event and delivery headers, and the signature."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/044aadd",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()) if delivery is None else delivery,
        "X-GitHub-Hook-ID": "292430182",
    }
    if not headers["X-GitHub-Delivery"]:
        del headers["X-GitHub-Delivery"]  # delivery="": a request that lacks the header
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    elif secret is not None:
        headers["X-Hub-Signature-256"] = (
            "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        )
    return http.post(f"{url}/github/webhook", content=body, headers=headers)
