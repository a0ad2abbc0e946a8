"""What a mapping keeps in the data dir across a restart, against real daemons: a Kinesis
tumbling window's state (written with the shard's checkpoint, so even ``kill -9`` keeps
it), the mapping's counters, and ``rapid queue --data-dir`` showing the mappings with no
daemon running. Also ``isWindowTerminatedEarly`` when a window's state outgrows 1 MB."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from tests.control import ROLE, python_zip, wait_active
from tests.daemon import run_cli, run_server
from tests.test_mappings_kinesis import clients, put, stream_arn, wait_for

TW = (
    "import base64, json\n"
    "def handler(e, c):\n"
    "    add = sum(int(base64.b64decode(r['kinesis']['data'])) for r in e['Records'])\n"
    "    print('TW ' + json.dumps({'final': e['isFinalInvokeForWindow'], 'early': e['isWindowTerminatedEarly'],\n"
    "          'state': e['state'], 'n': len(e['Records']), 'window': e['window']}), flush=True)\n"
    "    return {'state': {'total': e['state'].get('total', 0) + add}}\n"
)


def invokes(d) -> list[dict]:  # type: ignore[no-untyped-def, type-arg]
    return [json.loads(line.split("TW ", 1)[1]) for line in list(d.lines) if "TW {" in line]


def mapping_row(data_dir: str, uuid: str) -> dict[str, int] | None:
    """The mapping's line of ``rapid queue --data-dir`` (offline), as numbers by column."""
    r = run_cli(["queue", "--data-dir", data_dir])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    head = next((i for i, line in enumerate(lines) if line.startswith("mapping ")), None)
    if head is None:
        return None
    cols = lines[head].split()
    for line in lines[head + 1:]:
        cells = line.split()
        if cells and cells[0] == uuid:
            return {c: int(float(v)) for c, v in zip(cols[2:], cells[2:])}
    return None


def test_tumbling_state_and_counters_survive_a_kill(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    with run_server(["--data-dir", data], expect_exit=None) as d:
        lam, kin, _ = clients(d)
        lam.create_function(FunctionName="tw-keep", Runtime="python3.12", Handler="app.handler", Role=ROLE,
                            Code={"ZipFile": python_zip(TW)})
        wait_active(lam, "tw-keep")
        kin.create_stream(StreamName="tw-keep-s", ShardCount=1)
        m = lam.create_event_source_mapping(EventSourceArn=stream_arn("tw-keep-s"), FunctionName="tw-keep",
                                            StartingPosition="TRIM_HORIZON", TumblingWindowInSeconds=10,
                                            BatchSize=10)
        put(kin, "tw-keep-s", [("k", str(i)) for i in (1, 2, 3)])
        wait_for(lambda: sum(i["n"] for i in invokes(d) if not i["final"]) == 3, 30, "the first records")
        # The counters reach the data dir (rapid queue reads it beside the running daemon).
        row = wait_for(lambda: (r := mapping_row(data, m["UUID"])) and r["records"] >= 3 and r, 10,
                       "the counters in the data dir")
        assert row["batches"] >= 1
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        before = invokes(d)
    with run_server(["--data-dir", data]) as d:
        lam, kin, _ = clients(d)
        put(kin, "tw-keep-s", [("k", str(i)) for i in (4, 5)])
        # Whether 4 and 5 fell in the same window or a later one, the window's state came
        # back from the data dir: every final invoke together hands over all 15 (with the
        # state lost, the window of 1-3 would end with nothing of them).
        wait_for(lambda: sum(i["state"].get("total", 0) for i in before + invokes(d) if i["final"]) == 15, 60,
                 "the final invokes' state")
        if not any(i["final"] for i in before):  # the window was still open at the kill
            assert invokes(d)[0]["state"] == {"total": 6}
        assert not any(i["early"] for i in before + invokes(d))
        metrics = d.request("GET", "/metrics").body.decode()
        line = next(x for x in metrics.splitlines() if x.startswith("rapid_esm_records_total{") and m["UUID"] in x)
        assert float(line.rsplit(" ", 1)[1]) >= 5  # counted across the restart
    row = mapping_row(data, m["UUID"])  # no daemon now
    assert row is not None and row["records"] >= 5 and row["batches"] >= 3


def test_a_window_whose_state_outgrows_1_mb_is_terminated_early(tmp_path: Path) -> None:
    big = (
        "import base64, json\n"
        "def handler(e, c):\n"
        "    print('TW ' + json.dumps({'final': e['isFinalInvokeForWindow'], 'early': e['isWindowTerminatedEarly'],\n"
        "          'keys': sorted(e['state']), 'n': len(e['Records']), 'window': e['window']}), flush=True)\n"
        "    data = [base64.b64decode(r['kinesis']['data']).decode() for r in e['Records']]\n"
        "    state = dict(e['state'])\n"
        "    for d in data:\n"
        "        state[d] = 'x' * (700 * 1024)\n"  # two records' worth passes 1 MB
        "    return {'state': state}\n"
    )
    with run_server(["--data-dir", str(tmp_path / "data")]) as d:
        lam, kin, _ = clients(d)
        lam.create_function(FunctionName="tw-big", Runtime="python3.12", Handler="app.handler", Role=ROLE,
                            Code={"ZipFile": python_zip(big)}, MemorySize=256)
        wait_active(lam, "tw-big")
        kin.create_stream(StreamName="tw-big-s", ShardCount=1)
        m = lam.create_event_source_mapping(EventSourceArn=stream_arn("tw-big-s"), FunctionName="tw-big",
                                            StartingPosition="TRIM_HORIZON", TumblingWindowInSeconds=900,
                                            BatchSize=1)
        put(kin, "tw-big-s", [("k", "a"), ("k", "b"), ("k", "c")])
        wait_for(lambda: sum(i["n"] for i in invokes(d)) == 3, 60, "the three records")
        got = invokes(d)
        early = [i for i in got if i["early"]]
        # a, then b (the state now holds a and b: over 1 MB) -> an early final with both,
        # then c in the same window with a fresh state.
        assert len(early) == 1 and early[0]["final"] and early[0]["keys"] == ["a", "b"] and early[0]["n"] == 0
        after = got[got.index(early[0]) + 1:]
        c = next(i for i in after if i["n"] == 1)
        assert c["keys"] == []  # a fresh state
        if not any(i["final"] for i in after[:after.index(c)]):  # (no window boundary passed meanwhile)
            assert c["window"] == early[0]["window"]  # the same window goes on
        assert all(not i["early"] for i in got if i is not early[0])
        lam.delete_event_source_mapping(UUID=m["UUID"])


def test_a_stream_batch_cut_short_by_a_kill_runs_again_and_is_counted(tmp_path: Path) -> None:
    slow = (
        "import base64, json, time\n"
        "def handler(e, c):\n"
        "    data = [base64.b64decode(r['kinesis']['data']).decode() for r in e['Records']]\n"
        "    print('KD ' + json.dumps(data), flush=True)\n"
        "    for d in data:\n"
        "        if d.startswith('slow:'):\n"
        "            time.sleep(max(0.0, float(d[5:]) - time.time()))\n"
        "    return {}\n"
    )
    data = str(tmp_path / "data")
    with run_server(["--data-dir", data], expect_exit=None) as d:
        lam, kin, _ = clients(d)
        lam.create_function(FunctionName="kin-dup", Runtime="python3.12", Handler="app.handler", Role=ROLE,
                            Code={"ZipFile": python_zip(slow)}, Timeout=30)
        wait_active(lam, "kin-dup")
        kin.create_stream(StreamName="kin-dup-s", ShardCount=1)
        put(kin, "kin-dup-s", [("k", f"r{i}") for i in range(4)] + [("k", f"slow:{time.time() + 5}")])
        m = lam.create_event_source_mapping(EventSourceArn=stream_arn("kin-dup-s"), FunctionName="kin-dup",
                                            StartingPosition="TRIM_HORIZON", BatchSize=10)
        d.wait_for_line(r"KD \[", timeout=30)  # the batch is running (the function sleeps)
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
    with run_server(["--data-dir", data]) as d:
        line = d.wait_for_line(r"KD \[", timeout=30)  # read again from the checkpoint: at least once
        assert json.loads(line.split("KD ", 1)[1])[:4] == ["r0", "r1", "r2", "r3"]

        def redelivered() -> float:
            metrics = d.request("GET", "/metrics").body.decode()
            found = [x for x in metrics.splitlines() if x.startswith("rapid_esm_redelivered_total{") and m["UUID"] in x]
            return float(found[0].rsplit(" ", 1)[1]) if found else 0.0

        wait_for(lambda: redelivered() == 5, 20, "the five possible duplicates counted")


def test_a_failing_final_invoke_is_retried_until_it_succeeds(tmp_path: Path) -> None:
    # AWS: the window's final invocation suspends the shard until it succeeds, whatever
    # MaximumRetryAttempts says (here 0).
    flaky = (
        "import base64, json\n"
        "finals = 0\n"
        "def handler(e, c):\n"
        "    global finals\n"
        "    if e['isFinalInvokeForWindow']:\n"
        "        finals += 1\n"
        "        if finals < 3:\n"
        "            raise RuntimeError('not yet')\n"
        "        print('FINAL ' + json.dumps(e['state']), flush=True)\n"
        "        return {'state': {}}\n"
        "    add = sum(int(base64.b64decode(r['kinesis']['data'])) for r in e['Records'])\n"
        "    return {'state': {'total': e['state'].get('total', 0) + add}}\n"
    )
    with run_server(["--data-dir", str(tmp_path / "data")]) as d:
        lam, kin, _ = clients(d)
        lam.create_function(FunctionName="tw-flaky", Runtime="python3.12", Handler="app.handler", Role=ROLE,
                            Code={"ZipFile": python_zip(flaky)})
        wait_active(lam, "tw-flaky")
        kin.create_stream(StreamName="tw-flaky-s", ShardCount=1)
        m = lam.create_event_source_mapping(EventSourceArn=stream_arn("tw-flaky-s"), FunctionName="tw-flaky",
                                            StartingPosition="TRIM_HORIZON", TumblingWindowInSeconds=1,
                                            MaximumRetryAttempts=0, BatchSize=10)
        put(kin, "tw-flaky-s", [("k", "2"), ("k", "3")])
        def totals() -> int:  # (the two records may straddle a window boundary: sum every final)
            return sum(json.loads(x.split("FINAL ", 1)[1]).get("total", 0) for x in list(d.lines) if "FINAL {" in x)

        wait_for(lambda: totals() == 5, 60, "the final invoke to succeed at last")
        lam.delete_event_source_mapping(UUID=m["UUID"])
