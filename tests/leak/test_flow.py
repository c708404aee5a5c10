import pytest

from proxy.leak.flow import LeakFlow
from proxy.leak.hit import LeakBlocked
from proxy.leak.rules import TenantInfo, compile_rules
from proxy.stages.leak import LeakConfig

KEY = "AKIAIOSFODNN7EXAMPLE"
TENANTS = {"acme": TenantInfo(None, ()), "globex": TenantInfo(None, ("GLOBEX-ACCT-7777",))}


def flow(**actions) -> LeakFlow:
    cfg = LeakConfig.model_validate({"type": "leak", "actions": actions})
    return LeakFlow(compile_rules(cfg, TENANTS)["acme"])


def test_redact_counts_hits_by_kind():
    f = flow()
    rw = f.rewriter((0, "content", -1))
    assert rw.feed(f"a {KEY} b {KEY} ") == "a [REDACTED:secret] b [REDACTED:secret] "
    assert f.take_hits() == {("secret", "aws_access_key", "redact"): 2}
    assert f.take_hits() == {}


def test_replace_cuts_the_whole_choice():
    f = flow(secret="replace")
    content, args = f.rewriter((0, "content", -1)), f.rewriter((0, "tool_arguments", 0))
    other = f.rewriter((1, "content", -1))
    assert content.feed(f"x {KEY} y") == "x "
    assert f.take_cut() == [0] and f.take_cut() == []
    assert args.feed("{}") == "" and args.finish() == "" and content.finish() == ""
    assert other.feed("fine") == "fine"


def test_block_raises_with_the_hit_not_the_value():
    f = flow()
    rw = f.rewriter((0, "content", -1))
    with pytest.raises(LeakBlocked) as e:
        rw.feed("your id is GLOBEX-ACCT-7777.")
    assert e.value.hit.detector == "cross_tenant" and "7777" not in str(e.value)
    assert f.take_hits() == {("cross_tenant", "cross_tenant", "block"): 1}
