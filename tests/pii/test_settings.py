import pytest
from pydantic import ValidationError

from proxy.pii.settings import DEFAULT_ENTITIES, DetectionSettings, PiiSettings


def test_defaults_are_the_structured_types():
    s = PiiSettings().for_tenant("acme")
    assert s == DetectionSettings(entities=DEFAULT_ENTITIES, score_threshold=0.4)


def test_tenant_overrides_merge_key_by_key():
    cfg = PiiSettings.model_validate({"allow_list": ["help@acme.com"], "tenants": {"acme": {"score_threshold": 0.7, "entities": ["EMAIL_ADDRESS"]}}})
    acme = cfg.for_tenant("acme")
    assert acme.score_threshold == 0.7 and acme.entities == ("EMAIL_ADDRESS",)
    assert acme.allow_list == ("help@acme.com",)  # not overridden: the default applies
    assert cfg.for_tenant("globex").entities == DEFAULT_ENTITIES


@pytest.mark.parametrize("bad", [{"entities": ["email"]}, {"score_threshold": 1.5}, {"tenants": {"a": {"nope": 1}}}, {"unknown": 1}])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValidationError):
        PiiSettings.model_validate(bad)


def test_bad_custom_recognizers_fail_when_the_policy_is_parsed():
    with pytest.raises(ValidationError, match="recognizers"):
        PiiSettings.model_validate({"tenants": {"acme": {"recognizers": [{"name": "x", "supported_entity": "X"}]}}})
    ok = PiiSettings.model_validate({"recognizers": [{"name": "x", "supported_entity": "X", "deny_list": ["Falcon"]}]})
    assert ok.for_tenant("acme").recognizers[0]["deny_list"] == ["Falcon"]
