import pytest
from pydantic import ValidationError

from proxy.leak.settings import DEFAULT_ACTIONS, Actions, PatternRule, PromptSettings


def test_actions_given_only_lists_set_ones():
    assert Actions(secret="block").given() == {"secret": "block"}
    assert set(DEFAULT_ACTIONS) == set(Actions.model_fields)


@pytest.mark.parametrize("bad", [{"name": "Bad Name", "regex": "x"}, {"name": "ok", "regex": "("}, {"name": "ok", "regex": "x", "max_len": 0}])
def test_pattern_rule_validation(bad):
    with pytest.raises(ValidationError):
        PatternRule.model_validate(bad)


def test_prompt_settings_bounds():
    assert PromptSettings().threshold == 0.9
    with pytest.raises(ValidationError):
        PromptSettings(threshold=0)
