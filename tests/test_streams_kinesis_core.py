"""The Kinesis core with a clock the test controls: hash key ranges, MD5 routing, sequence
numbers, every iterator type, retention and iterator expiry."""

from __future__ import annotations

import base64
import hashlib

import pytest

from rapid.streams.kinesis import HASH_SPACE, KinesisError, Service, make_shards

T0 = 1_700_000_000.0


def put(svc, s, key, data=b"x", now=T0):
    return svc.put(s, {"PartitionKey": key, "Data": base64.b64encode(data).decode()}, now)


def test_shards_split_the_hash_space_as_kinesis_does():
    two = make_shards(2, T0)
    assert (two[0].start_hash, two[0].end_hash) == (0, 170141183460469231731687303715884105727)
    assert (two[1].start_hash, two[1].end_hash) == (170141183460469231731687303715884105728, HASH_SPACE - 1)
    three = make_shards(3, T0)
    assert three[0].end_hash == 113427455640312821154458202477256070484 and three[2].end_hash == HASH_SPACE - 1


def test_partition_key_md5_picks_the_shard_and_sequence_numbers_increase():
    svc = Service("us-east-1", "000000000000")
    s = svc.create("s", 4, T0)
    for key in ("a", "b", "c", "order-17"):
        shard, _ = put(svc, s, key)
        h = int(hashlib.md5(key.encode()).hexdigest(), 16)
        assert shard.start_hash <= h <= shard.end_hash
    shard = s.shards[0]
    seqs = [put(svc, s, "k", now=T0 + i, data=bytes([i]))[1].seq for i in range(5)]
    owner = s.shard_for(int(hashlib.md5(b"k").hexdigest(), 16))
    assert seqs == sorted(seqs) and len(set(seqs)) == 5 and all(len(str(q)) == 56 for q in seqs)
    assert owner.seqs[-5:] == seqs and shard is s.shards[0]


def test_iterator_types():
    svc = Service("us-east-1", "000000000000")
    s = svc.create("s", 1, T0)
    recs = [put(svc, s, "k", bytes([i]), T0 + i)[1] for i in range(4)]
    sid = "shardId-000000000000"

    def read(**kw):
        it = svc.iterator(s, {"ShardId": sid, **kw}, T0 + 10)
        return [r.data for r in svc.records(it, None, T0 + 10)[2]]

    assert read(ShardIteratorType="TRIM_HORIZON") == [b"\0", b"\1", b"\2", b"\3"]
    assert read(ShardIteratorType="LATEST") == []
    assert read(ShardIteratorType="AT_SEQUENCE_NUMBER", StartingSequenceNumber=str(recs[2].seq)) == [b"\2", b"\3"]
    assert read(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=str(recs[2].seq)) == [b"\3"]
    assert read(ShardIteratorType="AT_TIMESTAMP", Timestamp=T0 + 1) == [b"\1", b"\2", b"\3"]
    with pytest.raises(KinesisError) as e:
        read(ShardIteratorType="AT_SEQUENCE_NUMBER")
    assert e.value.code == "InvalidArgumentException"
    with pytest.raises(KinesisError) as e:
        svc.iterator(s, {"ShardId": "shardId-000000000009", "ShardIteratorType": "LATEST"}, T0)
    assert e.value.code == "ResourceNotFoundException"


def test_get_records_pages_with_next_iterator_and_millis_behind():
    svc = Service("us-east-1", "000000000000")
    s = svc.create("s", 1, T0)
    for i in range(5):
        put(svc, s, "k", bytes([i]), T0 + i)
    it = svc.iterator(s, {"ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}, T0 + 5)
    _, _, got, it, behind = svc.records(it, 2, T0 + 10)
    assert [r.data for r in got] == [b"\0", b"\1"] and behind == 8000  # the next record arrived at T0 + 2
    _, _, got, it, behind = svc.records(it, 10, T0 + 10)
    assert [r.data for r in got] == [b"\2", b"\3", b"\4"] and behind == 0
    _, _, got, it2, _ = svc.records(it, 10, T0 + 10)
    assert got == []
    put(svc, s, "k", b"late", T0 + 11)
    assert [r.data for r in svc.records(it2, 10, T0 + 12)[2]] == [b"late"]
    with pytest.raises(KinesisError) as e:
        svc.records(it2, 10, T0 + 12 + 301)
    assert e.value.code == "ExpiredIteratorException"


def test_retention_trims_old_records_and_limits():
    svc = Service("us-east-1", "000000000000")
    s = svc.create("s", 1, T0)
    put(svc, s, "k", b"old", T0)
    put(svc, s, "k", b"new", T0 + 3600 * 23)
    it = svc.iterator(s, {"ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}, T0 + 86400)
    assert [r.data for r in svc.records(it, None, T0 + 86400)[2]] == [b"new"]
    with pytest.raises(KinesisError) as e:
        put(svc, s, "k", b"x" * (1024 * 1024 + 1))
    assert e.value.code == "ValidationException"
    with pytest.raises(KinesisError) as e:
        svc.create("s", 1, T0)
    assert e.value.code == "ResourceInUseException"
    with pytest.raises(KinesisError) as e:
        svc.set_retention(s, 12, False)
    assert e.value.code == "InvalidArgumentException"


def test_an_iterator_of_a_deleted_stream_does_not_read_its_successor():
    svc = Service("us-east-1", "000000000000")
    s = svc.create("s", 1, T0)
    it = svc.iterator(s, {"ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}, T0)
    svc.delete(s)
    with pytest.raises(KinesisError) as e:
        svc.records(it, None, T0 + 1)
    assert e.value.code == "ResourceNotFoundException"
    svc.create("s", 1, T0 + 2)
    with pytest.raises(KinesisError) as e:
        svc.records(it, None, T0 + 3)
    assert e.value.code == "InvalidArgumentException"
