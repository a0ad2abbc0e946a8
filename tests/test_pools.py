"""Pools of instances: scaling out, reserved and host-wide limits (429s in AWS's shape),
provisioned concurrency, several invocations per instance, idle timeout and recycling,
freezing between invokes."""

import threading
import time

from tests.daemon import run_server, wait_until


def _running(d):
    """Invocations the daemon is running now, from its START and REPORT lines."""
    lines = list(d.lines)
    return sum(" START RequestId" in line for line in lines) - sum(" REPORT RequestId" in line for line in lines)


def _parked_polls(pid):
    """How many connections to ``pid``'s Runtime API the daemon has read to the end."""
    with open(f"/proc/{pid}/environ", "rb") as f:
        env = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
    port = "%04X" % int(env[b"AWS_LAMBDA_RUNTIME_API"].rsplit(b":", 1)[1])
    served = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, state, queues = fields[1], fields[3], fields[4]
            if local.endswith(":" + port) and state == "01":  # the daemon's end, established
                if queues.split(":")[1] != "00000000":
                    return 0  # a request not read yet
                served += 1
    return served


def burst(d, name, payloads, headers=None):
    results = [None] * len(payloads)

    def call(i):
        results[i] = d.invoke(name, payloads[i], headers=headers)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(payloads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_busy_instances_make_the_pool_grow_and_warm_ones_are_reused(behave_fn):
    with run_server(["--function", f"fn={behave_fn}", "--timeout", "60"]) as d:
        # Four invokes held busy together (each until the flag exists): four instances.
        flag = behave_fn / "release"  # inside the task root, which the runtime sees
        threads = [threading.Thread(target=d.invoke, args=("fn", {"wait_for": str(flag)}), kwargs={"timeout": 90})
                   for _ in range(4)]
        for t in threads:
            t.start()
        wait_until(lambda: _running(d) == 4, 30, "four invocations running")
        assert len(d.runtime_pids()) == 4
        flag.touch()
        for t in threads:
            t.join()
        grown = set(d.runtime_pids())
        # Sequential invokes run on the warm instances: the pool does not grow.
        pids = {d.invoke("fn", {"pid": True}).json() for _ in range(10)}
        assert pids <= grown
        assert set(d.runtime_pids()) == grown


def test_reserved_concurrency_throttles_beyond_it(behave_fn):
    with run_server(["--function", f"fn={behave_fn}", "--concurrency", "2"]) as d:
        replies = burst(d, "fn", [{"sleep": 1} for _ in range(5)])
        ok = [r for r in replies if r.status == 200]
        throttled = [r for r in replies if r.status == 429]
        assert len(ok) == 2 and len(throttled) == 3
        for r in throttled:
            assert r.headers["x-amzn-errortype"] == "TooManyRequestsException"
            assert r.headers["retry-after"] == "1"
            assert r.json() == {"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
                                "Type": "User", "message": "Rate Exceeded."}
        assert len(d.runtime_pids()) == 2
        # Once they are done, the function takes work again.
        assert d.invoke("fn", {"echo": 1}).json() == 1


def test_reserved_concurrency_zero_throttles_every_invoke(behave_fn):
    with run_server(["--function", f"fn={behave_fn}", "--concurrency", "0"]) as d:
        r = d.invoke("fn", {"echo": 1})
        assert r.status == 429
        assert r.json()["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
        assert d.runtime_pids() == []


def test_host_wide_limit_throttles_with_its_own_reason(behave_fn, tmp_path):
    toml = tmp_path / "rapid.toml"
    toml.write_text(
        f'max_concurrency = 102\n'
        f'[functions.a]\npath = "{behave_fn}"\ntimeout = 30\n'
        f'[functions.b]\npath = "{behave_fn}"\ntimeout = 30\n'
        f'[functions.r]\npath = "{behave_fn}"\nreserved_concurrency = 1\n'
    )
    with run_server(["--config", str(toml)], env={"RAPID_SHUTDOWN_TIMEOUT": "0"}) as d:
        # 101 unreserved: occupy them all with slow invokes of a and b.
        holders = []
        for name, n in (("a", 60), ("b", 41)):
            for _ in range(n):
                t = threading.Thread(target=d.invoke, args=(name, {"sleep": 15}))
                t.start()
                holders.append(t)
        wait_until(lambda: len(d.runtime_pids()) >= 101, 30, "101 instances")
        wait_until(lambda: _running(d) >= 101, 30, "101 invocations running")
        r = d.invoke("a", {"echo": 1})
        assert r.status == 429
        assert r.json()["Reason"] == "ConcurrentInvocationLimitExceeded"
        # The reserved function still has its own room.
        assert d.invoke("r", {"echo": "reserved"}).json() == "reserved"
        d.stop()  # no need to wait for the holders' 15 s: they are answered at shutdown
        for t in holders:
            t.join()


def test_idle_instances_of_one_function_make_room_for_another(behave_fn, tmp_path):
    toml = tmp_path / "rapid.toml"
    toml.write_text(
        f'max_concurrency = 101\n[functions.a]\npath = "{behave_fn}"\n[functions.b]\npath = "{behave_fn}"\n'
    )
    with run_server(["--config", str(toml)]) as d:
        assert all(r.status == 200 for r in burst(d, "a", [{"sleep": 0.3} for _ in range(101)]))
        # Every unreserved slot holds an idle instance of a; b still gets one.
        assert d.invoke("b", {"echo": "b"}).json() == "b"


def test_reservations_must_leave_100_unreserved(behave_fn, tmp_path):
    from tests.daemon import run_cli

    toml = tmp_path / "rapid.toml"
    toml.write_text(f'max_concurrency = 150\n[functions.a]\npath = "{behave_fn}"\nreserved_concurrency = 51\n')
    r = run_cli(["serve", "--config", str(toml)])
    assert r.returncode == 2 and "100 stay unreserved" in r.stderr


def test_provisioned_concurrency_is_initialised_ahead_and_kept_warm(behave_fn, tmp_path):
    toml = tmp_path / "rapid.toml"
    toml.write_text(f'idle_timeout = 0.5\n[functions.pc]\npath = "{behave_fn}"\nprovisioned_concurrency = 2\n')
    with run_server(["--config", str(toml)]) as d:
        wait_until(lambda: len([line for line in d.lines if "INIT_REPORT" in line]) >= 2, 10, "two INIT_REPORTs")
        inits = [line for line in d.lines if "INIT_REPORT" in line]
        assert len(inits) == 2 and all("Phase: init\tStatus: success" in line for line in inits)
        assert len(d.runtime_pids()) == 2
        r = d.invoke("pc", {"env": "AWS_LAMBDA_INITIALIZATION_TYPE"})
        assert r.json() == "provisioned-concurrency"
        # Initialised ahead: no Init Duration on the REPORT.
        assert "Init Duration" not in d.wait_for_line(f"REPORT RequestId: {r.headers['x-amzn-requestid']}")
        # Traffic beyond them spills onto on-demand instances.
        replies = burst(d, "pc", [{"sleep": 0.5} for _ in range(4)])
        assert all(r.status == 200 for r in replies)
        assert len(d.runtime_pids()) >= 3
        # The on-demand ones go after the idle timeout; provisioned ones stay (that the sweep
        # never stops them is checked without a clock in tests/unit/test_upkeep.py).
        wait_until(lambda: len(d.runtime_pids()) == 2, 10, "the on-demand instances to go")
        assert (d.invoke("pc", {"env": "AWS_LAMBDA_INITIALIZATION_TYPE"}).json() == "provisioned-concurrency")


def test_idle_timeout_stops_instances(behave_fn):
    with run_server(["--function", f"fn={behave_fn}"], env={"RAPID_IDLE_TIMEOUT": "0.5"}) as d:
        pid = d.invoke("fn", {"pid": True}).json()
        assert d.runtime_pids() == [pid]
        wait_until(lambda: d.runtime_pids() == [], 10, "the idle instance to stop")
        # A new invoke is a cold start again.
        r = d.invoke("fn", {"pid": True})
        assert r.json() != pid
        assert "Init Duration" in d.wait_for_line(f"REPORT RequestId: {r.headers['x-amzn-requestid']}")


def test_max_lifetime_recycles_after_the_running_invocation(behave_fn):
    with run_server(["--function", f"fn={behave_fn}"], env={"RAPID_MAX_LIFETIME": "1"}) as d:
        first = d.invoke("fn", {"pid": True}).json()
        # Running across the lifetime: it finishes, then the instance is recycled.
        assert d.invoke("fn", {"sleep": 1.5}).json() == "slept"
        wait_until(lambda: first not in d.runtime_pids(), 10, "the old instance to be recycled")
        assert d.invoke("fn", {"pid": True}).json() != first


def test_several_invocations_per_instance(behave_fn, tmp_path):
    toml = tmp_path / "rapid.toml"
    toml.write_text(f'[functions.mi]\npath = "{behave_fn}"\nper_instance_concurrency = 3\nreserved_concurrency = 3\n')
    with run_server(["--config", str(toml)]) as d:
        assert d.invoke("mi", {"env": "AWS_LAMBDA_MAX_CONCURRENCY"}).json() == "3"
    # The behave runtime is single-threaded; a threaded one holds 3 /next at once.
    multi = tmp_path / "multi"
    multi.mkdir()
    (multi / "bootstrap").write_text(MULTI_BOOT.replace("{python}", __import__("sys").executable))
    (multi / "bootstrap").chmod(0o755)
    toml.write_text(f'[functions.mi]\npath = "{multi}"\nper_instance_concurrency = 3\nreserved_concurrency = 3\n')
    with run_server(["--config", str(toml)]) as d:
        d.invoke("mi", {"sleep": 0})
        replies = burst(d, "mi", [{"sleep": 1} for _ in range(3)])
        assert [r.status for r in replies] == [200, 200, 200]
        assert len({r.json()["pid"] for r in replies}) == 1  # one instance held all three
        assert len(d.runtime_pids()) == 1
        assert d.invoke("mi", {"sleep": 0}).status == 200


MULTI_BOOT = """#!{python}
# A runtime for Lambda Managed Instances: AWS_LAMBDA_MAX_CONCURRENCY threads, each polling /next.
import http.client, json, os, threading, time
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
def worker():
    conn = http.client.HTTPConnection(host, int(port))
    while True:
        conn.request("GET", "/2018-06-01/runtime/invocation/next")
        r = conn.getresponse()
        event = json.loads(r.read())
        rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
        time.sleep(event.get("sleep", 0))
        conn.request("POST", "/2018-06-01/runtime/invocation/" + rid + "/response",
                     json.dumps({"pid": os.getpid()}))
        conn.getresponse().read()
for _ in range(int(os.environ["AWS_LAMBDA_MAX_CONCURRENCY"])):
    threading.Thread(target=worker).start()
"""


import os

import pytest

from tests.capabilities import cgroup_of, exercised, need


def process_state(pid):
    """The one-letter state of ``pid`` from /proc (T: stopped by a signal)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def freezer_state(pid):
    """``FROZEN``/``THAWED`` from the freezer cgroup rapid put ``pid`` in (v1
    ``freezer.state``, v2 ``cgroup.freeze`` as 1/0), or None outside rapid's cgroups."""
    folder = cgroup_of(pid, "freezer")
    if not folder or "/rapid-" not in folder:
        return None
    v1 = os.path.join(folder, "freezer.state")
    if os.path.exists(v1):
        with open(v1) as f:
            return f.read().strip()
    with open(os.path.join(folder, "cgroup.freeze")) as f:
        return {"1": "FROZEN", "0": "THAWED"}[f.read().strip()]


def test_an_idle_instance_is_frozen_by_its_freezer_cgroup(behave_fn, tmp_path):
    need("root", "freezer_cgroup")
    with run_server(["--function", f"fn={behave_fn}", "--timeout", "60"], env={"RAPID_FREEZE_WITH": "cgroup"}) as d:
        assert "idle freeze cgroup freezer" in next(line for line in d.stderr if "isolation:" in line)
        pid = d.invoke("fn", {"pid": True}).json()
        # Seen from outside: the kernel's freezer holds the idle instance, and no signal
        # stopped it (a SIGSTOPped process shows state T).
        wait_until(lambda: freezer_state(pid) == "FROZEN", 10, "the idle instance's cgroup to freeze")
        assert process_state(pid) != "T"
        # While it works it is thawed.
        flag = behave_fn / "release"  # inside the task root, which the runtime sees
        held = threading.Thread(target=d.invoke, args=("fn", {"wait_for": str(flag)}), kwargs={"timeout": 90})
        held.start()
        wait_until(lambda: freezer_state(pid) == "THAWED", 10, "the busy instance's cgroup to thaw")
        flag.touch()
        held.join()
        wait_until(lambda: freezer_state(pid) == "FROZEN", 10, "the instance to freeze again")
    exercised("cgroup freezer")


def test_an_idle_instance_is_stopped_by_sigstop(behave_fn, tmp_path):
    with run_server(["--function", f"fn={behave_fn}", "--timeout", "60"], env={"RAPID_FREEZE_WITH": "signal"}) as d:
        assert "idle freeze SIGSTOP/SIGCONT" in next(line for line in d.stderr if "isolation:" in line)
        pid = d.invoke("fn", {"pid": True}).json()
        wait_until(lambda: process_state(pid) == "T", 10, "the idle instance to be stopped")
        flag = behave_fn / "release"  # inside the task root, which the runtime sees
        held = threading.Thread(target=d.invoke, args=("fn", {"wait_for": str(flag)}), kwargs={"timeout": 90})
        held.start()
        wait_until(lambda: process_state(pid) != "T", 10, "the busy instance to be continued")
        flag.touch()
        held.join()
        wait_until(lambda: process_state(pid) == "T", 10, "the instance to be stopped again")
    exercised("SIGSTOP freeze")


def test_freeze_can_be_turned_off(behave_fn):
    with run_server(["--function", f"fn={behave_fn}"], env={"RAPID_FREEZE": "false"}) as d:
        assert "idle freeze off" in next(line for line in d.stderr if "isolation:" in line)
        before = d.invoke("fn", {"ticks": True}).json()
        # Idle, it keeps running: its ticks move on while nobody invokes it.
        pid = d.invoke("fn", {"pid": True}).json()
        assert process_state(pid) != "T"
        wait_until(lambda: d.invoke("fn", {"ticks": True}).json() - before > 50, 10, "ticks while idle")


def test_burst_of_200_at_a_pool_of_8(behave_fn):
    with run_server(["--function", f"fn={behave_fn}", "--concurrency", "8"]) as d:
        answers: dict[int, object] = {}
        statuses = []
        lock = threading.Lock()

        def client(ids):
            for i in ids:
                while True:
                    r = d.invoke("fn", {"echo": i})
                    with lock:
                        statuses.append(r.status)
                    if r.status == 429:
                        continue  # as an SDK retries a throttle
                    with lock:
                        assert i not in answers
                        answers[i] = r.json()
                    break

        threads = [threading.Thread(target=client, args=(range(k, 200, 16),)) for k in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert answers == {i: i for i in range(200)}  # none lost, none twice, none crossed
        assert set(statuses) <= {200, 429}
        assert len(d.runtime_pids()) <= 8
        # The log stream is read on its own thread: it may trail the answers a little.
        wait_until(lambda: len([line for line in d.lines if "REPORT RequestId" in line]) >= 200, 10, "the REPORTs")
        starts = [line for line in d.lines if " START RequestId" in line]
        assert len(starts) == 200  # a throttled invoke never ran


def test_many_held_long_polls(tmp_path):
    """One instance holding 1,000 /next at once (per-instance concurrency): all are served."""
    multi = tmp_path / "multi"
    multi.mkdir()
    (multi / "bootstrap").write_text(MULTI_BOOT.replace("{python}", __import__("sys").executable))
    (multi / "bootstrap").chmod(0o755)
    toml = tmp_path / "rapid.toml"
    toml.write_text(f'[functions.mi]\npath = "{multi}"\nper_instance_concurrency = 1000\n')
    with run_server(["--config", str(toml)]) as d:
        pid = d.invoke("mi", {}).json()["pid"]
        # All 1,000 threads are parked at /next once the daemon has read 1,000 requests on
        # the runtime's connections: 1,000 of them established, nothing left unread.
        wait_until(lambda: _parked_polls(pid) >= 1000, 60, "1,000 parked /next")
        replies = burst(d, "mi", [{} for _ in range(100)])
        assert all(r.status == 200 for r in replies)
        assert len({r.json()["pid"] for r in replies}) == 1
        assert d.request("GET", "/healthz").status == 200
