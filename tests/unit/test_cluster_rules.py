"""The cluster's pure rules, without NATS: leases, peer ranking, registry change events,
KV key encoding."""

from __future__ import annotations

import pytest

from rapid.cluster import lease_rules
from rapid.cluster.lease_rules import Lease
from rapid.cluster.registry_sync import settings_events, version_event
from rapid.cluster.status import FunctionLoad, NodeStatus, candidates
from rapid.registry.jetstream_store import kv_key, record_key
from rapid.registry.model import CodeRef, FunctionSettings, Settings, VersionSpec


def test_a_holder_gives_a_lease_up_before_the_server_can_expire_it() -> None:
    lease = Lease(slot=0, revision=7, sent=100.0)
    assert lease.deadline == 100.0 + lease_rules.TTL - lease_rules.MARGIN
    assert lease.deadline < 100.0 + lease_rules.TTL  # the server's expiry is later
    assert lease_rules.lapsed([lease], lease.deadline - 0.001) == []
    assert lease_rules.lapsed([lease], lease.deadline) == [lease]
    assert lease_rules.RENEW * 2 < lease_rules.TTL - lease_rules.MARGIN  # a missed renewal is survivable


def test_free_slots_skip_the_held_ones() -> None:
    assert lease_rules.free_slots(4, {1, 2}) == [0, 3]
    assert lease_rules.free_slots(0, set()) == []


@pytest.mark.parametrize(("leases", "instances", "acquiring", "reserved", "back"), [
    (2, 2, 0, 2, 0),
    (2, 1, 0, 2, 1),  # an instance stopped: its lease goes back
    (2, 1, 1, 2, 0),  # one being taken for an instance about to start
    (3, 3, 0, 1, 2),  # the reservation shrank
    (1, 0, 0, None, 1),  # the reservation was removed
    (0, 2, 0, 2, 0),
])
def test_spare_leases(leases: int, instances: int, acquiring: int, reserved: int | None, back: int) -> None:
    assert lease_rules.spare(leases, instances, acquiring, reserved) == back


def test_instances_beyond_the_leases_are_stopped() -> None:
    assert lease_rules.excess(3, 1) == 2
    assert lease_rules.excess(1, 3) == 0


def _node(node_id: str, room: int = 0, **functions: FunctionLoad) -> NodeStatus:
    return NodeStatus(id=node_id, url="http://127.0.0.1:1", started=0.0, unreserved_room=room, functions=functions)


def test_peers_with_an_idle_instance_come_first() -> None:
    a = _node("a", room=50)
    b = _node("b", room=1, f=FunctionLoad(2, 1, 0))
    c = _node("c", room=0, f=FunctionLoad(1, 0, 0))
    assert [p.id for p in candidates([a, b, c], "f", reserved=False)] == ["b", "a"]


def test_a_reserved_function_goes_only_to_lease_holders() -> None:
    a = _node("a", room=50)
    b = _node("b", f=FunctionLoad(1, 0, 1))
    c = _node("c", f=FunctionLoad(1, 1, 1))
    assert [p.id for p in candidates([a, b, c], "f", reserved=True)] == ["c", "b"]


def _spec(version: str = "$LATEST", sha: str = "a", memory: int = 128, state: str = "Active") -> VersionSpec:
    return VersionSpec(name="f", version=version, code=CodeRef(sha256=sha, size=1, unzipped=1),
                       settings=Settings(runtime="python3.12", role="r", memory=memory), revision_id="r", last_modified="t", state=state)


def test_version_events() -> None:
    assert version_event(None, _spec()) == "create"
    assert version_event(None, _spec("3")) == "publish"
    assert version_event(_spec(), _spec(sha="b")) == "update"
    assert version_event(_spec(), _spec(memory=256)) == "update"
    assert version_event(_spec(state="Pending"), _spec(state="Active")) is None  # only the State moved on
    assert version_event(_spec(), None) == "delete"
    assert version_event(_spec("3"), None) == "delete-version"
    assert version_event(None, None) is None


def test_settings_events() -> None:
    assert settings_events(None, FunctionSettings(reserved=2)) == [("concurrency", None)]
    assert settings_events(FunctionSettings(provisioned={"1": 2}), FunctionSettings(provisioned={"live": 1})) == [
        ("provisioned", "1"), ("provisioned", "live")]
    assert settings_events(FunctionSettings(tags={"a": "b"}), FunctionSettings()) == []


@pytest.mark.parametrize("key", ["f/$LATEST", "my-fn/12", "layer/00000001", "f/", "uuid-1/shardId-000000000000"])
def test_kv_keys_round_trip_and_are_valid(key: str) -> None:
    import re

    coded = kv_key("version", key)
    assert re.fullmatch(r"[-/_=.a-zA-Z0-9]+", coded)
    assert record_key(coded) == ("version", key)


def test_provisioned_shares_sum_to_the_setting() -> None:
    from rapid.cluster.provisioned import share

    nodes = ["c", "a", "b"]
    for count in range(0, 10):
        parts = [share(count, [n for n in nodes if n != me], me) for me in nodes]
        assert sum(parts) == count
        assert max(parts) - min(parts) <= 1
    assert share(5, [], "a") == 5  # alone: all of it
