"""Provider choice for one call: compliance filters, then the tenant's preference.

Pure: takes the compiled policy, a tenant and a model; returns the target or the
reasons nothing qualified (so the 403 can name the unmet requirement).
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.config.policy import CompiledPolicy, ProviderTarget, TenantPolicy, provider_endpoint


@dataclass(frozen=True)
class NoRoute:
    status: int
    code: str
    message: str


def allowed_endpoints(policy: CompiledPolicy) -> frozenset[str]:
    return frozenset(policy.model.egress.allow)


def choose_provider(policy: CompiledPolicy, tenant: TenantPolicy, model: str, allow: frozenset[str]) -> ProviderTarget | NoRoute:
    mcfg = policy.model.models.get(model)
    if mcfg is None:
        return NoRoute(404, "model_not_found", f"the model {model!r} does not exist or is not available through this proxy")
    if not tenant.may_use(model):
        return NoRoute(403, "model_not_in_plan", f"the model {model!r} is not included in the {tenant.plan_name!r} plan")
    order = tenant.config.providers or list(policy.model.providers)
    unmet: list[str] = []
    for name in order:
        prov = policy.model.providers[name]
        if model not in prov.models or (mcfg.provider is not None and mcfg.provider != name):
            continue
        attrs = prov.attributes
        if "baa" in tenant.config.require and not attrs.baa:
            unmet.append(f"{name}: no BAA (tenant requires baa)")
            continue
        if "no_train" in tenant.config.require and not attrs.no_train:
            unmet.append(f"{name}: may train on data (tenant requires no_train)")
            continue
        if tenant.config.regions and attrs.region not in tenant.config.regions:
            unmet.append(f"{name}: region {attrs.region or 'unknown'} not in {tenant.config.regions}")
            continue
        scheme, host, port = provider_endpoint(prov)
        if f"{host}:{port}" not in allow:
            unmet.append(f"{name}: {host}:{port} is not in egress.allow")
            continue
        return ProviderTarget(name=name, config=prov, host=host, port=port, scheme=scheme,
                              api_key=policy.provider_keys.get(name), upstream_model=prov.models[model])
    if not unmet:
        return NoRoute(403, "no_provider", f"no provider available to this tenant serves the model {model!r}")
    return NoRoute(403, "egress_denied", "no provider qualifies for this tenant and model: " + "; ".join(unmet))


_PATHS = {"chat": "/chat/completions", "completions": "/completions", "embeddings": "/embeddings"}


def upstream_request(target: ProviderTarget, route: str) -> tuple[str, dict[str, str]]:
    """URL and auth headers for the provider, built from configuration only."""
    cfg = target.config
    if cfg.kind == "azure":
        version = cfg.api_version or "2024-10-21"
        url = f"{cfg.base_url}/openai/deployments/{target.upstream_model}{_PATHS[route]}?api-version={version}"
        headers = {"api-key": target.api_key} if target.api_key else {}
    else:
        url = cfg.base_url + _PATHS[route]
        headers = {"Authorization": f"Bearer {target.api_key}"} if target.api_key else {}
    return url, headers
