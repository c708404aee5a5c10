import pytest
from pydantic import ValidationError

from proxy.leak.settings import DEFAULT_ACTIONS, LeakActions, LeakPattern, LeakPromptSettings


def test_actions_given_only_lists_set_ones():
    assert LeakActions(secret="block").given() == {"secret": "block"}
    assert set(DEFAULT_ACTIONS) == set(LeakActions.model_fields)


@pytest.mark.parametrize("bad", [{"name": "Bad Name", "regex": "x"}, {"name": "ok", "regex": "("}, {"name": "ok", "regex": "x", "max_len": 0}])
def test_pattern_rule_validation(bad):
    with pytest.raises(ValidationError):
        LeakPattern.model_validate(bad)


def test_prompt_settings_bounds():
    assert LeakPromptSettings().threshold == 0.9
    with pytest.raises(ValidationError):
        LeakPromptSettings(threshold=0)
