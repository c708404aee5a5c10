import pytest

from proxy.injection.band import Bands


@pytest.mark.parametrize("score,action", [(0.0, "allow"), (0.49, "allow"), (0.5, "reinforce"), (0.89, "reinforce"), (0.9, "block"), (1.0, "block")])
def test_default_bands(score, action):
    assert Bands().action(score) == action


def test_flag_below_reinforce():
    b = Bands(flag=0.3, reinforce=0.6, block=0.9)
    assert [b.action(s) for s in (0.2, 0.3, 0.6, 0.95)] == ["allow", "flag", "reinforce", "block"]


def test_invalid_bands_are_refused():
    with pytest.raises(ValueError):
        Bands(block=1.5)
    with pytest.raises(ValueError):
        Bands(reinforce=0.95, block=0.9)
