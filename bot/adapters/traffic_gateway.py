"""Gateway API as the traffic provider: the weights of one ``HTTPRoute`` rule's two ``backendRefs``.

Both weights change in one JSON patch (what ``kubectl patch httproute NAME --type=json -p '[...]'`` sends), so no
intermediate split is ever served. The patch first tests that each position still holds the Service it is
meant to weigh: a route someone reordered in the meantime is refused (422) instead of getting the weights
swapped. A ``backendRef`` without ``weight`` weighs 1 (the HTTPRoute API reference), so its weight is added
rather than replaced. Whether the split is served is read from ``status.parents[].conditions``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from bot.adapters.traffic_argo import last_manager
from bot.adapters.traffic_kube import JSON_PATCH, ClusterCalls
from bot.domain.traffic import TrafficSpec
from bot.errors import DeployerError
from bot.ports import RolloutPhase, TrafficResult, TrafficView

GROUP, VERSION, PLURAL = "gateway.networking.k8s.io", "v1", "httproutes"


def _refs(route: Mapping[str, Any], rule: int) -> list[dict[str, Any]]:
    rules = (route.get("spec") or {}).get("rules") or []
    if rule >= len(rules):
        raise DeployerError(
            f"httproute '{(route.get('metadata') or {}).get('name')}' has no rule {rule} "
            f"(it has {len(rules)})"
        )
    return list(rules[rule].get("backendRefs") or [])


def positions(route: Mapping[str, Any], spec: TrafficSpec) -> tuple[int, int]:
    """Where the stable and the canary Service sit among the rule's backendRefs."""
    refs = _refs(route, spec.rule)
    names = [r.get("name") for r in refs]
    missing = [n for n in (spec.stable_backend, spec.canary_backend) if n not in names]
    if missing:
        raise DeployerError(
            f"httproute '{spec.name}' rule {spec.rule} has no backendRef {', '.join(missing)} "
            f"(it has {', '.join(str(n) for n in names) or 'none'})"
        )
    return names.index(spec.stable_backend), names.index(spec.canary_backend)


def weights(route: Mapping[str, Any], spec: TrafficSpec) -> tuple[int, int]:
    refs = _refs(route, spec.rule)
    s, c = positions(route, spec)
    return int(refs[s].get("weight", 1)), int(refs[c].get("weight", 1))


def view_of(route: Mapping[str, Any], spec: TrafficSpec) -> TrafficView:
    meta = route.get("metadata") or {}
    stable, canary = weights(route, spec)
    percent = round(100 * canary / (stable + canary)) if stable + canary else 0
    parents = (route.get("status") or {}).get("parents") or []
    accepted: bool | None = None
    if parents:
        accepted = all(
            any(c.get("type") == kind and c.get("status") == "True" for c in p.get("conditions") or [])
            for p in parents
            for kind in ("Accepted", "ResolvedRefs")
        )
    return TrafficView(
        provider="gateway-api",
        set_weight=percent,
        actual_weight=None,  # the API does not measure traffic: the metrics do
        phase=RolloutPhase.HEALTHY if accepted else RolloutPhase.PROGRESSING,
        stable_revision=spec.stable_backend,
        canary_revision=spec.canary_backend,
        resource_version=str(meta.get("resourceVersion") or ""),
        generation=int(meta.get("generation") or 0),
        last_manager=last_manager(meta),
        accepted=accepted,
    )


def weight_patch(route: Mapping[str, Any], spec: TrafficSpec, percent: int) -> list[dict[str, Any]]:
    """The one JSON patch that sets the stable Service to ``100 - percent`` and the canary to ``percent``."""
    refs = _refs(route, spec.rule)
    s, c = positions(route, spec)
    base = f"/spec/rules/{spec.rule}/backendRefs"
    ops: list[dict[str, Any]] = [
        {"op": "test", "path": f"{base}/{s}/name", "value": spec.stable_backend},
        {"op": "test", "path": f"{base}/{c}/name", "value": spec.canary_backend},
    ]
    for index, weight in ((s, 100 - percent), (c, percent)):
        op = "replace" if "weight" in refs[index] else "add"
        ops.append({"op": op, "path": f"{base}/{index}/weight", "value": weight})
    return ops


class GatewayRouteProvider:
    """Drives one HTTPRoute rule: each stage sets the canary's weight to the stage's percentage."""

    def __init__(self, calls: ClusterCalls, spec: TrafficSpec) -> None:
        self._calls = calls
        self.spec = spec
        self.name = spec.name
        self.namespace = calls.namespace

    @classmethod
    def from_environment(
        cls,
        spec: TrafficSpec,
        *,
        kubeconfig: str | None = None,
        environ: Mapping[str, str] | None = None,
        request_timeout: tuple[float, float] = (3.0, 10.0),
    ) -> GatewayRouteProvider:
        calls = ClusterCalls.from_environment(
            group=GROUP,
            version=VERSION,
            plural=PLURAL,
            namespace=spec.namespace,
            kubeconfig=kubeconfig,
            environ=environ,
            request_timeout=request_timeout,
        )
        return cls(calls, spec)

    def close(self) -> None:
        self._calls.close()

    def read(self) -> TrafficView:
        try:
            return view_of(self._calls.get(self.name), self.spec)
        finally:
            self._calls.take()

    def _set(self, percent: int, verb: str) -> TrafficResult:
        try:
            route = self._calls.get(self.name)
            if weights(route, self.spec) == (100 - percent, percent):
                view = view_of(route, self.spec)
                return TrafficResult(
                    f"httproute '{self.name}' already at {percent}%", self._calls.take(), view, False
                )
            out = self._calls.patch(self.name, weight_patch(route, self.spec, percent), JSON_PATCH)
        except DeployerError:
            self._calls.take()
            raise
        return TrafficResult(
            f"httproute.gateway.networking.k8s.io/{self.name} patched ({verb}: canary {percent}%)",
            self._calls.take(),
            view_of(out, self.spec),
        )

    def advance(self, percent: int) -> TrafficResult:
        return self._set(percent, "stage")

    def abort(self) -> TrafficResult:
        return self._set(0, "rollback")

    def undo(self) -> TrafficResult:
        """A route holds no revisions: after the rollback the stable Service already takes everything."""
        view = self.read()
        return TrafficResult(f"httproute '{self.name}' has nothing to undo", (), view, False)

    def watch(
        self, on_change: Callable[[TrafficView], None], *, timeout_s: float, stop: Callable[[], bool]
    ) -> None:
        route = self._calls.get(self.name)
        on_change(view_of(route, self.spec))
        rv = str((route.get("metadata") or {}).get("resourceVersion") or "")
        # closing(): leaving the loop early must end the stream now, not when the generator is collected.
        with contextlib.closing(self._calls.watch(self.name, rv, timeout_s)) as events:
            for obj in events:
                if stop():
                    break
                on_change(view_of(obj, self.spec))
        self._calls.take()
