"""Where the Kubernetes client would find credentials, found without importing it (it costs ~57 MB).

The rule is the client's own (``kubernetes.config``): a kubeconfig named in KUBECONFIG (a list, like kubectl's),
else the pod's service account when running in a cluster, else ``~/.kube/config``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def credentials_source(kubeconfig: str | None, environ: Mapping[str, str]) -> str | None:
    """Words naming where a rollback would take its credentials from; None when there are none at all."""
    kubeconfig = kubeconfig or environ.get("KUBECONFIG")
    if kubeconfig:
        files = [f for f in kubeconfig.split(os.pathsep) if f]
        return f"kubeconfig {', '.join(files)}"
    if environ.get("KUBERNETES_SERVICE_HOST"):
        return "the pod's service account"
    home = environ.get("HOME")
    default = Path(home) / ".kube" / "config" if home else None
    if default is not None and default.is_file():
        return f"kubeconfig {default}"
    return None
