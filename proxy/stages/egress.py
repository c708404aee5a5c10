"""Stage `egress`: the provider comes from the policy only, deny by default.

Chooses the provider (compliance filters, then tenant preference, then the
egress allowlist), builds the upstream URL and auth from configuration, and
applies provider attributes to the body (no_train -> store: false).
"""

from __future__ import annotations

from proxy.config.policy import ProviderTarget
from proxy.egress.routing import NoRoute, allowed_endpoints, choose_provider, upstream_request
from proxy.pipeline.deny import Deny
from proxy.pipeline.exchange import Exchange
from proxy.pipeline.stage import Stage, StageConfig


class EgressConfig(StageConfig):
    type: str = "egress"


class EgressStage(Stage):
    type = "egress"
    Config = EgressConfig

    def __init__(self, config, policy, services) -> None:
        super().__init__(config, policy, services)
        self._allow = allowed_endpoints(policy)
        # The policy is immutable, so the route for (tenant, model, route) never changes:
        # worked out once. Only configured models are cached (the key space stays bounded).
        self._routes: dict[tuple[str, str, str], Deny | tuple[ProviderTarget, str, dict[str, str]]] = {}

    def _route(self, ex: Exchange) -> Deny | tuple[ProviderTarget, str, dict[str, str]]:
        key = (ex.tenant_id, ex.model, ex.route)
        cached = self._routes.get(key)
        if cached is not None:
            return cached
        target = choose_provider(self.policy, ex.tenant, ex.model, self._allow)
        if isinstance(target, NoRoute):
            kind = "permission_error" if target.status == 403 else "invalid_request_error"
            result: Deny | tuple = Deny(target.status, target.message, kind, target.code, reason=target.code)
        else:
            url, headers = upstream_request(target, ex.route)
            result = (target, url, headers)
        if ex.model in self.policy.model.models:
            self._routes[key] = result
        return result

    async def on_request(self, ex: Exchange) -> Deny | None:
        """Pick the provider; set ex.provider, ex.upstream_url and the provider's auth headers."""
        route = self._route(ex)
        if isinstance(route, Deny):
            return route
        target, ex.upstream_url, headers = route
        ex.provider = target
        ex.upstream_headers = dict(headers)
        if target.config.attributes.no_train and target.config.kind == "openai" and ex.route == "chat":
            ex.body["store"] = False
        ex.decide(self.type, "allow", provider=target.name)
        return None


STAGE = EgressStage
