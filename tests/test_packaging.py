"""Packaging and deployment files: Slack app manifests, Kubernetes manifests, Dockerfile.

Static checks against the limits Slack's manifest schema enforces and against what the bot really reads and
serves: settings names come from bot/config.py, probe paths are requested from the real WSGI app.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import load_settings
from bot.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes"
HTTP_MANIFEST = ROOT / "slack-app-manifest.yaml"
SOCKET_MANIFEST = ROOT / "slack-app-manifest.socket-mode.yaml"
REAL_LOOKING_TOKEN = re.compile(r"\bx(?:ox[abpors]|app)-\d")


# --- helpers ---------------------------------------------------------------------------------------------------


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def _k8s_files() -> list[Path]:
    return [*sorted(K8S.rglob("*.yaml")), ROOT / "deploy" / "rbac.yaml"]


def _one(kind: str, path: Path) -> dict[str, Any]:
    (doc,) = [d for d in _docs(path) if d["kind"] == kind]
    result: dict[str, Any] = doc
    return result


def _deployment() -> dict[str, Any]:
    return _one("Deployment", K8S / "deployment.yaml")


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = container
    return result


def _settings_read_by_bot() -> set[str]:
    source = (ROOT / "bot" / "config.py").read_text(encoding="utf-8")
    names = set(re.findall(r'env\.get\(\s*"([A-Z][A-Z0-9_]*)"', source))
    names |= set(re.findall(r'_[a-z]+\(\s*env,\s*"([A-Z][A-Z0-9_]*)"', source))
    return names


def _events_handled() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "bot").rglob("*.py"):
        found |= set(re.findall(r'app\.event\(\s*"([a-z_]+)"', path.read_text(encoding="utf-8")))
    return found


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    result = []
    for line in logical:
        word, _, rest = line.strip().partition(" ")
        result.append((word.upper(), rest.strip()))
    return result


def _final_stage() -> list[tuple[str, str]]:
    instructions = _dockerfile()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def _wsgi_get(path: str) -> tuple[str, bytes]:
    from bot.runtime.web import WebApp

    # Health and metrics never reach Bolt, so no App is needed to answer them.
    web = WebApp(None, ready=lambda: None)  # type: ignore[arg-type]
    status: list[str] = []
    environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO(b"")}
    body = b"".join(web(environ, lambda s, _headers: status.append(s)))
    return status[0], body


# --- Slack app manifests ---------------------------------------------------------------------------------------


@pytest.fixture(params=[HTTP_MANIFEST, SOCKET_MANIFEST], ids=["http", "socket-mode"])
def manifest(request: pytest.FixtureRequest) -> dict[str, Any]:
    doc = yaml.safe_load(request.param.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def test_manifest_fields_are_within_slack_schema_limits(manifest: dict[str, Any]) -> None:
    info = manifest["display_information"]
    assert 1 <= len(info["name"]) <= 35
    assert len(info.get("description", "")) <= 140
    assert 1 <= len(manifest["features"]["bot_user"]["display_name"]) <= 80
    commands = manifest["features"]["slash_commands"]
    assert 1 <= len(commands) <= 50
    for command in commands:
        assert command["command"].startswith("/") and 2 <= len(command["command"]) <= 32
        assert command["description"].strip()
        assert len(command.get("usage_hint", "")) <= 1000


def test_manifest_declares_release_command_home_tab_and_interactivity(manifest: dict[str, Any]) -> None:
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/release"
    for sub in ("start", "status", "list", "abort", "incident", "rollback", "unlock", "report", "help"):
        assert re.search(rf"(^|\| ){sub}\b", command["usage_hint"]), sub
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"commands", "chat:write", "chat:write.public", "usergroups:read", "files:write"} <= scopes
    assert {"channels:read", "groups:read"} <= scopes  # conversations.members, for the App Home


def test_every_subscribed_event_has_a_listener(manifest: dict[str, Any]) -> None:
    handled = _events_handled()
    assert "app_home_opened" in handled  # the grep itself works
    subscribed = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert subscribed and subscribed <= handled


def test_http_manifest_points_every_url_at_slack_events() -> None:
    doc = yaml.safe_load(HTTP_MANIFEST.read_text(encoding="utf-8"))
    settings = doc["settings"]
    urls = [c["url"] for c in doc["features"]["slash_commands"]]
    urls += [settings["event_subscriptions"]["request_url"], settings["interactivity"]["request_url"]]
    assert len(urls) == 3
    assert all(u.startswith("https://") and u.endswith("/slack/events") for u in urls)
    assert settings["socket_mode_enabled"] is False


def test_socket_mode_manifest_has_no_urls_and_otherwise_matches_http() -> None:
    http = yaml.safe_load(HTTP_MANIFEST.read_text(encoding="utf-8"))
    socket = yaml.safe_load(SOCKET_MANIFEST.read_text(encoding="utf-8"))
    assert socket["settings"]["socket_mode_enabled"] is True
    assert "url" not in json.dumps(socket)  # no url / request_url key anywhere
    for command in http["features"]["slash_commands"]:
        del command["url"]
    del http["settings"]["event_subscriptions"]["request_url"]
    del http["settings"]["interactivity"]["request_url"]
    http["settings"]["socket_mode_enabled"] = True
    assert socket == http


# --- Kubernetes manifests --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", _k8s_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_kubernetes_manifest_parses_and_names_itself(path: Path) -> None:
    docs = _docs(path)
    assert docs
    for doc in docs:
        if doc["kind"] in ("Kustomization", "Component"):
            assert "namespace" not in doc  # it would move rbac.yaml's Role out of hallyulatino-prod
            continue
        assert doc["apiVersion"] and doc["metadata"]["name"]
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"], "no kustomize namespace: each object names its own"


def test_kustomization_lists_existing_files_but_never_the_secret_example() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    resources = kustomization["resources"]
    assert all((K8S / r).is_file() for r in resources)
    assert "secret.example.yaml" not in resources
    assert {
        "namespace.yaml",
        "serviceaccount.yaml",
        "configmap.yaml",
        "deployment.yaml",
        "service.yaml",
    } <= set(resources)


def test_probes_and_healthcheck_hit_paths_the_bot_answers() -> None:
    container = _container(_deployment())
    probes = {
        kind: container[kind]["httpGet"] for kind in ("readinessProbe", "livenessProbe", "startupProbe")
    }
    assert probes["readinessProbe"]["path"] == "/healthz"
    assert probes["livenessProbe"]["path"] == "/livez"
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in probes.values():
        assert probe["port"] in port_names
        assert _wsgi_get(probe["path"])[0].startswith("200")
    assert _wsgi_get("/not-served")[0].startswith("404")  # so a wrong probe path would fail above
    healthcheck = next(args for word, args in _dockerfile() if word == "HEALTHCHECK")
    path = re.search(r"127\.0\.0\.1:%s(/[a-z]+)", healthcheck)
    assert path is not None and _wsgi_get(path.group(1))[0].startswith("200")


def test_every_configured_variable_is_a_setting_the_bot_reads() -> None:
    settings = _settings_read_by_bot()
    assert {"SLACK_BOT_TOKEN", "DATABASE_URL", "PORT", "HEALTH_CHECK_TIMEOUT"} <= settings  # the parse works
    configured: set[str] = set(_one("ConfigMap", K8S / "configmap.yaml")["data"])
    configured |= set(_one("Secret", K8S / "secret.example.yaml")["stringData"])
    for workload in (_deployment(), _one("Job", K8S / "migrate-job.yaml")):
        configured |= {e["name"] for e in _container(workload).get("env", [])}
    final_env = " ".join(args for word, args in _final_stage() if word == "ENV")
    image_env = set(re.findall(r"\b([A-Z][A-Z0-9_]*)=", final_env))
    runtime = {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PATH", "HOME", "MPLCONFIGDIR"}
    assert configured - settings == set()
    assert image_env - runtime - settings == set()


def test_configmap_values_pass_the_bots_own_validation() -> None:
    data = _one("ConfigMap", K8S / "configmap.yaml")["data"]
    settings = load_settings({**data, "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "s"})
    settings.require_slack()
    assert settings.language in ("ko", "en")
    assert Path(settings.checklist_path).is_file()  # empty RELEASE_BOT_CHECKLIST → the checklist in the image


def test_secret_example_is_placeholders_that_fail_fast() -> None:
    for path in [K8S / "secret.example.yaml", ROOT / "deploy" / "README.md", *_k8s_files()]:
        assert not REAL_LOOKING_TOKEN.search(path.read_text(encoding="utf-8")), path
    values = _one("Secret", K8S / "secret.example.yaml")["stringData"]
    assert all("REPLACE_ME" in v for v in values.values())
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN is invalid"):
        load_settings(values).require_slack()


def test_deployment_references_the_secret_configmap_and_rbac_subject() -> None:
    deployment = _deployment()
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    secret = _one("Secret", K8S / "secret.example.yaml")
    example_text = (K8S / "secret.example.yaml").read_text(encoding="utf-8")
    for env in container["env"]:
        ref = env["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"]
        if not ref.get("optional"):
            assert ref["key"] in secret["stringData"]
        else:
            assert f"{ref['key']}:" in example_text  # at least documented there
    (source,) = container["envFrom"]
    assert source["configMapRef"]["name"] == _one("ConfigMap", K8S / "configmap.yaml")["metadata"]["name"]
    account = _one("ServiceAccount", K8S / "serviceaccount.yaml")["metadata"]
    assert pod["serviceAccountName"] == account["name"]
    binding = _one("RoleBinding", ROOT / "deploy" / "rbac.yaml")
    assert {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]} in binding[
        "subjects"
    ]


def test_deployment_is_locked_down_and_sized() -> None:
    deployment = _deployment()
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    assert deployment["spec"]["replicas"] == 2
    assert pod["terminationGracePeriodSeconds"] == 30
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "160Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_service_routes_port_80_to_the_bots_port() -> None:
    service = _one("Service", K8S / "service.yaml")
    container = _container(_deployment())
    (port,) = service["spec"]["ports"]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert service["spec"]["type"] == "ClusterIP" and port["port"] == 80
    assert named[port["targetPort"]] == 3000
    labels = _deployment()["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_builds_base_and_sqlite_variant(tmp_path: Path) -> None:
    def build(folder: Path) -> list[dict[str, Any]]:
        out = subprocess.run(
            ["kubectl", "kustomize", str(folder)], capture_output=True, text=True, timeout=60, check=True
        ).stdout
        return [d for d in yaml.safe_load_all(out) if d]

    base = build(K8S)
    assert sorted(d["kind"] for d in base) == sorted(
        ["Namespace", "ServiceAccount", "ConfigMap", "Deployment", "Service"]
    )
    overlay = tmp_path / "sqlite"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(K8S, overlay)],
                "components": [os.path.relpath(K8S / "sqlite", overlay)],
            }
        ),
        encoding="utf-8",
    )
    docs = build(overlay)
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    (claim,) = [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    container = _container(deployment)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    (url,) = [e for e in container["env"] if e["name"] == "DATABASE_URL"]
    assert url == {"name": "DATABASE_URL", "value": "sqlite:////data/release-bot.db"}
    assert load_settings({"DATABASE_URL": url["value"]}).database_url == url["value"]
    data_volume = next(m["name"] for m in container["volumeMounts"] if m["mountPath"] == "/data")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes[data_volume]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]


# --- Dockerfile ------------------------------------------------------------------------------------------------


def test_dockerfile_runs_release_bot_as_non_root_with_a_healthcheck() -> None:
    instructions = _dockerfile()
    final = _final_stage()
    words = [w for w, _ in final]
    assert sum(w == "FROM" for w, _ in instructions) >= 2  # dependencies are installed in a separate stage
    user = [args for w, args in final if w == "USER"][-1]
    assert user.split(":")[0] not in ("root", "0") and user.split(":")[0].isdigit()
    healthcheck = next(args for w, args in final if w == "HEALTHCHECK")
    assert healthcheck.upper() != "NONE" and "/livez" in healthcheck
    assert json.loads(next(args for w, args in final if w == "ENTRYPOINT")) == ["release-bot"]
    assert json.loads(next(args for w, args in final if w == "CMD")) == ["serve"]
    assert "3000" in next(args for w, args in final if w == "EXPOSE").split()
    env = " ".join(args for w, args in final if w == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PYTHONUNBUFFERED=1" in env
    assert 'DATABASE_URL="sqlite:////data/' in env
    assert words.index("USER") > max(i for i, w in enumerate(words) if w in ("RUN", "COPY"))
    runs = " ".join(args for w, args in final if w == "RUN")
    assert not re.search(r"\b(gcc|build-essential|make|git)\b", runs)


def test_the_package_carries_its_checklist_and_migrations_into_the_image() -> None:
    from bot.checklist.loading import default_checklist_path
    from bot.db.migrate import MIGRATIONS, head_revision

    # Package data, found through the package wherever it is installed: nothing outside bot/ is needed.
    assert default_checklist_path().is_relative_to(ROOT / "bot") and default_checklist_path().is_file()
    assert MIGRATIONS.is_relative_to(ROOT / "bot") and (MIGRATIONS / "env.py").is_file()
    assert head_revision()
    declared = _pyproject()["tool"]["setuptools"]["package-data"]
    assert "*.yaml" in declared["bot.checklist"] and "script.py.mako" in declared["bot.db.migrations"]
    copied = {
        args.split()[0].rstrip("/") for w, args in _dockerfile() if w == "COPY" and "--from" not in args
    }
    assert {"bot", "pyproject.toml"} <= copied
    runs = " ".join(args for w, args in _dockerfile() if w == "RUN")
    # Dependencies only from the hashed lock; the project itself with nothing fetched beyond it.
    assert "install --no-deps --require-hashes -r requirements.lock" in runs
    assert "install --no-deps --no-build-isolation -e /app" in runs
    assert "load_checklist(default_checklist_path())" in runs and "head_revision()" in runs


def test_the_base_image_is_pinned_by_digest() -> None:
    (base,) = {args for w, args in _dockerfile() if w == "ARG" and args.startswith("PYTHON_IMAGE=")}
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", base), base
    assert all(args == "${PYTHON_IMAGE}" or args.startswith("${PYTHON_IMAGE} ") for w, args in _dockerfile() if w == "FROM")


def _pyproject() -> dict[str, Any]:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _glob(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern: ``*`` stays within one folder, a leading ``**/`` matches any depth."""
    prefix = ""
    if pattern.startswith("**/"):
        prefix, pattern = "(?:.*/)?", pattern[3:]
    body = "".join("[^/]*" if ch == "*" else re.escape(ch) if ch not in "[]" else ch for ch in pattern)
    return re.compile(prefix + body)


def _dockerignored(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        regex = _glob(line.lstrip("!").rstrip("/"))
        if any(regex.fullmatch(c) for c in candidates):
            excluded = not line.startswith("!")
    return excluded


def test_dockerignore_keeps_what_the_dockerfile_copies_and_drops_local_state() -> None:
    copied = [args.split()[0] for w, args in _dockerfile() if w == "COPY" and "--from" not in args]
    for source in copied:
        assert not _dockerignored(source.rstrip("/")), source
    assert not _dockerignored("bot/db/migrate.py")
    for local in (
        ".git/config",
        ".env",
        "release-bot.db",
        "bot/__pycache__/web.cpython-311.pyc",
        "tests/x.py",
    ):
        assert _dockerignored(local), local
