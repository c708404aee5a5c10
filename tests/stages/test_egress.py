"""Stage `egress`: the provider comes from the policy; nothing in the body or headers moves it."""

from __future__ import annotations

import pytest

from proxy.pipeline.chain import Chain
from proxy.stages.egress import EgressStage
from tests.harness import make_exchange, make_policy, make_stage

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def stage_for(policy):
    return make_stage(EgressStage, {"type": "egress"}, policy)


async def test_sets_provider_url_and_provider_key():
    policy = make_policy()
    ex = make_exchange(policy, BODY)
    assert await stage_for(policy).on_request(ex) is None
    assert ex.provider.name == "openai" and ex.upstream_url == "http://127.0.0.1:9/chat/completions"
    assert ex.upstream_headers == {"Authorization": "Bearer sk-test-provider-key-0000"}
    assert ex.decisions[-1].stage == "egress" and ex.decisions[-1].decision == "allow"
    assert ex.decisions[-1].detail == {"provider": "openai"}


async def test_no_train_provider_gets_store_false_even_if_the_client_asked_for_true():
    policy = make_policy()
    ex = make_exchange(policy, {**BODY, "store": True})
    await stage_for(policy).on_request(ex)
    assert ex.body["store"] is False


async def test_baa_tenant_goes_to_the_baa_provider():
    policy = make_policy()
    ex = make_exchange(policy, BODY, tenant="mercy")
    await stage_for(policy).on_request(ex)
    assert ex.provider.name == "azure"
    assert ex.upstream_url.startswith("http://127.0.0.1:10/openai/deployments/gpt4o-mini-deploy/chat/completions?api-version=")
    assert ex.upstream_headers == {"api-key": "sk-test-provider-key-0000"}
    assert "store" not in ex.body  # store is an OpenAI parameter; not added for azure


@pytest.mark.parametrize("body_extra,headers", [
    ({"user": "globex", "metadata": {"base_url": "http://127.0.0.2"}}, {}),
    ({}, {"X-Upstream": "http://127.0.0.2", "Host": "evil.example", "X-Forwarded-Host": "evil.example"}),
])
async def test_body_and_headers_never_choose_the_upstream(body_extra, headers):
    policy = make_policy()
    ex = make_exchange(policy, {**BODY, **body_extra}, headers=headers)
    await stage_for(policy).on_request(ex)
    assert ex.upstream_url == "http://127.0.0.1:9/chat/completions"


async def test_denials_have_status_type_and_reason():
    policy = make_policy(egress={"allow": []})
    ex = make_exchange(policy, BODY)
    deny = await Chain([stage_for(policy)]).run_request(ex)
    assert deny.status == 403 and deny.type == "permission_error" and deny.code == "egress_denied" and deny.reason == "egress_denied"
    assert ex.provider is None and ex.upstream_url is None
    ex = make_exchange(make_policy(), {**BODY, "model": "nope"})
    deny = await stage_for(make_policy()).on_request(ex)
    assert deny.status == 404 and deny.type == "invalid_request_error" and deny.code == "model_not_found"


async def test_embeddings_route_url():
    policy = make_policy()
    ex = make_exchange(policy, {"model": "text-embedding-3-small", "input": "x"}, route="embeddings")
    await stage_for(policy).on_request(ex)
    assert ex.upstream_url == "http://127.0.0.1:9/embeddings" and "store" not in ex.body
