"""`Sampling`, the one value that says how a runtime generates: defaults, normalising, and refusals."""

from __future__ import annotations

import math

import pytest

from motet.errors import InvalidSampling, MotetError
from motet.runtimes import Sampling


def test_defaults_are_256_greedy_unseeded_tokens_with_no_stop() -> None:
    assert Sampling() == Sampling(max_tokens=256, temperature=0.0, seed=None, stop=())


def test_stop_and_temperature_are_normalised_and_the_value_is_hashable() -> None:
    one = Sampling(temperature=1, stop="\n")
    assert (one.temperature, one.stop) == (1.0, ("\n",))
    assert isinstance(one.temperature, float)
    assert Sampling(stop=["a", "b"]).stop == ("a", "b")
    assert hash(Sampling(stop=["a"])) == hash(Sampling(stop=("a",)))
    with pytest.raises(AttributeError):
        one.max_tokens = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"max_tokens": 0}, "max_tokens", "max_tokens is 0: pass a positive integer"),
        ({"max_tokens": 2.5}, "max_tokens", "max_tokens is 2.5: pass a positive integer"),
        ({"max_tokens": True}, "max_tokens", "max_tokens is True: pass a positive integer"),
        ({"temperature": -0.1}, "temperature", "temperature is -0.1: pass 0 (greedy) or more"),
        ({"temperature": math.nan}, "temperature", "temperature is nan"),
        ({"temperature": "hot"}, "temperature", "temperature is 'hot'"),
        ({"seed": 1.5}, "seed", "seed is 1.5: pass an integer or None"),
        ({"stop": ["ok", ""]}, "stop", "stop is '': a stop sequence is a non-empty string"),
        ({"stop": [None]}, "stop", "stop is None"),
    ],
)
def test_a_field_no_runtime_can_honour_is_named(fields: dict[str, object], field: str, message: str) -> None:
    with pytest.raises(InvalidSampling) as caught:
        Sampling(**fields)  # type: ignore[arg-type]
    assert str(caught.value).startswith(message)
    assert caught.value.field == field
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, MotetError)
