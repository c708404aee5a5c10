"""Provider choice: compliance filters, tenant preference, the host:port allowlist (SECURITY_TESTS C5 allowlist forms, routing by baa/region/preference)."""

from __future__ import annotations

import pytest

from proxy.egress.routing import NoRoute, allowed_endpoints, choose_provider, upstream_request
from tests.harness import make_policy

PROVIDERS = {
    "openai": {"base_url": "https://api.openai.com/v1", "api_key": {"from_env": "RAMPARTS_TEST_PROVIDER_KEY"},
               "attributes": {"baa": False, "region": "us", "no_train": True}, "models": {"gpt-4o-mini": "gpt-4o-mini", "text-embedding-3-small": "text-embedding-3-small"}},
    "azure": {"base_url": "https://acme-eu.openai.azure.com", "kind": "azure", "api_key": {"from_env": "RAMPARTS_TEST_PROVIDER_KEY"},
              "api_version": "2024-10-21", "attributes": {"baa": True, "region": "eu", "no_train": True}, "models": {"gpt-4o-mini": "gpt4o-mini-deploy"}},
    "cheap": {"base_url": "https://llm.cheap.example:8443/v1", "attributes": {"baa": False, "region": "us", "no_train": False},
              "models": {"gpt-4o-mini": "mini"}},
}
ALLOW = ["api.openai.com:443", "acme-eu.openai.azure.com:443", "llm.cheap.example:8443"]


def policy(tenants=None, allow=ALLOW, **over):
    return make_policy(providers=PROVIDERS, egress={"allow": allow, "allow_private_ips": []},
                       tenants=tenants or {"acme": {"plan": "pro"}}, **over)


def route(pol, tenant="acme", model="gpt-4o-mini"):
    return choose_provider(pol, pol.tenants[tenant], model, allowed_endpoints(pol))


def test_default_order_is_the_policy_order():
    t = route(policy())
    assert t.name == "openai" and (t.host, t.port, t.scheme) == ("api.openai.com", 443, "https")
    assert t.api_key == "sk-test-provider-key-0000" and t.upstream_model == "gpt-4o-mini"


def test_baa_requirement_routes_to_the_baa_provider():
    t = route(policy({"mercy": {"plan": "pro", "require": ["baa"]}}), "mercy")
    assert t.name == "azure" and t.upstream_model == "gpt4o-mini-deploy"


def test_baa_requirement_with_no_baa_provider_is_403_naming_the_reason():
    pol = policy({"mercy": {"plan": "pro", "require": ["baa"]}}, allow=["api.openai.com:443", "llm.cheap.example:8443"])
    r = route(pol, "mercy")
    assert isinstance(r, NoRoute) and r.status == 403 and r.code == "egress_denied"
    assert "no BAA" in r.message and "not in egress.allow" in r.message


def test_region_filter():
    assert route(policy({"eu": {"plan": "pro", "regions": ["eu"]}}), "eu").name == "azure"
    r = route(policy({"ap": {"plan": "pro", "regions": ["ap"]}}), "ap")
    assert isinstance(r, NoRoute) and r.status == 403 and "region" in r.message


def test_no_train_requirement_skips_a_training_provider():
    pol = policy({"t": {"plan": "pro", "require": ["no_train"], "providers": ["cheap", "openai"]}})
    assert route(pol, "t").name == "openai"


def test_tenant_preference_order():
    pol = policy({"p": {"plan": "pro", "providers": ["cheap", "azure", "openai"]}})
    assert route(pol, "p").name == "cheap"
    pol = policy({"p": {"plan": "pro", "providers": ["azure"]}})
    assert route(pol, "p").name == "azure"


def test_model_pinned_to_a_provider():
    pol = policy(models={"gpt-4o-mini": {"provider": "azure", "input_per_1m_usd": 0.15, "output_per_1m_usd": 0.6}})
    assert route(pol).name == "azure"


def test_unknown_model_is_404_and_a_model_outside_the_plan_is_403():
    pol = policy()
    r = route(pol, model="gpt-5-secret")
    assert isinstance(r, NoRoute) and r.status == 404 and r.code == "model_not_found"
    pol = policy(plans={"tiny": {"models": ["text-embedding-3-small"]}}, tenants={"acme": {"plan": "tiny"}})
    r = route(pol)
    assert isinstance(r, NoRoute) and r.status == 403 and r.code == "model_not_in_plan"


@pytest.mark.parametrize("allow", [
    ["api.openai.com:80"],  # wrong port
    ["api.openai.com.evil.example:443"],
    ["openai.com:443"],  # parent domain is not the host
    ["api.openai.co:443"],
    [],
])
def test_c5_allowlist_is_exact_host_and_port(allow):
    pol = policy({"o": {"plan": "pro", "providers": ["openai"]}}, allow=allow)
    r = route(pol, "o")
    assert isinstance(r, NoRoute) and r.status == 403


def test_c5_uppercase_base_url_host_matches_the_lowercase_allowlist_entry():
    providers = {**PROVIDERS, "openai": {**PROVIDERS["openai"], "base_url": "https://API.OpenAI.com/v1"}}
    pol = make_policy(providers=providers, egress={"allow": ALLOW}, tenants={"acme": {"plan": "pro"}})
    assert route(pol).host == "api.openai.com"


@pytest.mark.parametrize("entry", ["API.openai.com:443", "api.openai.com", "https://api.openai.com:443", "api.openai.com:443/v1", "*.openai.com:443"])
def test_c5_allowlist_entries_must_be_plain_lowercase_host_port(entry):
    with pytest.raises(ValueError):
        policy(allow=[entry])


def test_upstream_request_is_built_from_configuration_only():
    pol = policy({"mercy": {"plan": "pro", "require": ["baa"]}})
    url, headers = upstream_request(route(pol), "chat")
    assert url == "https://api.openai.com/v1/chat/completions" and headers == {"Authorization": "Bearer sk-test-provider-key-0000"}
    url, headers = upstream_request(route(pol), "embeddings")
    assert url == "https://api.openai.com/v1/embeddings"
    url, headers = upstream_request(route(pol, "mercy"), "chat")
    assert url == "https://acme-eu.openai.azure.com/openai/deployments/gpt4o-mini-deploy/chat/completions?api-version=2024-10-21"
    assert headers == {"api-key": "sk-test-provider-key-0000"}


def test_provider_without_a_key_sends_no_auth_header():
    pol = policy({"c": {"plan": "pro", "providers": ["cheap"]}})
    pol.provider_keys["cheap"] = None
    url, headers = upstream_request(route(pol, "c"), "chat")
    assert url == "https://llm.cheap.example:8443/v1/chat/completions" and headers == {}


@pytest.mark.parametrize("base_url", ["ftp://x.example/v1", "https://user:pw@x.example/v1", "https://x.example/v1?x=1", "https://x.example/v1#f", "/v1"])
def test_provider_base_url_shape(base_url):
    with pytest.raises(ValueError):
        make_policy(providers={**PROVIDERS, "cheap": {**PROVIDERS["cheap"], "base_url": base_url}})
