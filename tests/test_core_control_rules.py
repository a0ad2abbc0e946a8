"""The control plane's pure rules: version resolution, alias routing, validation."""

from __future__ import annotations

import random

import pytest

from rapid.core import rules
from rapid.core.errors import ServiceError
from rapid.core.routing import LATEST, Route, UnknownQualifier, choose, resolve


def test_unqualified_and_latest_resolve_to_latest() -> None:
    assert resolve(None, set(), {}, 0.5) == (LATEST, None)
    assert resolve("$LATEST", set(), {}, 0.5) == (LATEST, None)


def test_published_version_must_exist() -> None:
    assert resolve("2", {"1", "2"}, {}, 0.5) == ("2", None)
    with pytest.raises(UnknownQualifier):
        resolve("3", {"1", "2"}, {}, 0.5)


def test_alias_resolves_to_its_version_and_names_itself() -> None:
    aliases = {"live": Route("1")}
    assert resolve("live", {"1"}, aliases, 0.99) == ("1", "live")
    with pytest.raises(UnknownQualifier):
        resolve("beta", {"1"}, aliases, 0.5)


def test_weighted_choice_splits_at_the_weight() -> None:
    route = Route("1", (("2", 0.3),))
    assert choose(route, 0.0) == "2"
    assert choose(route, 0.2999) == "2"
    assert choose(route, 0.3) == "1"
    assert choose(route, 0.999) == "1"
    assert choose(Route("1", (("2", 0.0),)), 0.0) == "1"


def test_weighted_choice_share_over_many_draws() -> None:
    rng = random.Random(7)
    route = Route("1", (("2", 0.3),))
    n = 10_000
    share = sum(choose(route, rng.random()) == "2" for _ in range(n)) / n
    assert abs(share - 0.3) < 4 * (0.3 * 0.7 / n) ** 0.5


@pytest.mark.parametrize("runtime", ["provided", "provided.al2", "provided.al2023", "python3.9", "python3.14",
                                     "nodejs18.x", "nodejs22.x", "nodejs26.x"])
def test_supported_runtimes(runtime: str) -> None:
    rules.check_runtime(runtime)


@pytest.mark.parametrize("runtime,words", [("python2.7", "no longer supported"), ("nodejs16.x", "no longer supported"),
                                           ("java21", "enum value set"), ("cobol", "enum value set")])
def test_refused_runtimes(runtime: str, words: str) -> None:
    with pytest.raises(ServiceError) as exc:
        rules.check_runtime(runtime)
    assert exc.value.code == "InvalidParameterValueException" and words in exc.value.message


def test_handler_required_for_bundled_runtimes_only() -> None:
    rules.check_handler("provided.al2023", None)
    with pytest.raises(ServiceError):
        rules.check_handler("python3.12", None)
    with pytest.raises(ServiceError) as exc:
        rules.check_handler("python3.12", "app handler")
    assert exc.value.code == "ValidationException"


def test_role_shape() -> None:
    rules.check_role("arn:aws:iam::000000000000:role/x")
    for bad in (None, "x", "arn:aws:iam::1:role/x"):
        with pytest.raises(ServiceError):
            rules.check_role(bad)


@pytest.mark.parametrize("memory,timeout,storage", [(127, None, None), (10241, None, None), (None, 0, None),
                                                    (None, 901, None), (None, None, 511), (None, None, 10241)])
def test_ranges(memory: int | None, timeout: int | None, storage: int | None) -> None:
    with pytest.raises(ServiceError) as exc:
        rules.check_sizes(memory, timeout, storage)
    assert exc.value.code == "ValidationException"
    rules.check_sizes(128, 900, 10240)


def test_environment_rules() -> None:
    rules.check_environment({"A": "1"})
    with pytest.raises(ServiceError) as exc:
        rules.check_environment({"AWS_REGION": "x"})
    assert "Reserved keys used in this request: AWS_REGION" in exc.value.message
    with pytest.raises(ServiceError) as exc:
        rules.check_environment({"BIG": "x" * 4100})
    assert "exceeded the 4KB limit" in exc.value.message
    rules.check_environment({"BIG": "x" * 4000})


def test_layer_rules() -> None:
    arn = "arn:aws:lambda:us-east-1:000000000000:layer:deps:{}"
    rules.check_layers([arn.format(1)])
    with pytest.raises(ServiceError) as exc:
        rules.check_layers([f"arn:aws:lambda:us-east-1:000000000000:layer:l{i}:1" for i in range(6)])
    assert exc.value.message == "Cannot reference more than 5 layers."
    with pytest.raises(ServiceError) as exc:
        rules.check_layers([arn.format(1), arn.format(2)])
    assert "same layer" in exc.value.message
    assert rules.layer_of(arn.format(3)) == ("deps", 3)


def test_hundred_stay_unreserved() -> None:
    rules.check_reserved(900, 0, 1000)
    rules.check_reserved(400, 500, 1000)
    with pytest.raises(ServiceError) as exc:
        rules.check_reserved(401, 500, 1000)
    assert "below its minimum value of [100]" in exc.value.message


def test_routing_config_rules() -> None:
    rules.check_routing("1", {"2": 0.5}, ["1", "2"])
    for primary, weights in (("$LATEST", {"2": 0.1}), ("1", {"2": 1.0}), ("1", {"1": 0.1}),
                             ("1", {"2": 0.1, "3": 0.1}), ("1", {"$LATEST": 0.1})):
        with pytest.raises(ServiceError):
            rules.check_routing(primary, weights, ["1", "2", "3"])
