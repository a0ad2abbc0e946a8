"""The first things a user does: start, invoke, see the logs, stop."""

from tests.daemon import run_server


def test_echo_round_trip_and_logs(echo_fn):
    with run_server(["--function", f"echo={echo_fn}"]) as d:
        r = d.invoke("echo", {"hello": "world"})
        assert r.status == 200
        assert r.json() == {"hello": "world"}
        assert r.headers["x-amz-executed-version"] == "$LATEST"
        rid = r.headers["x-amzn-requestid"]
        report = d.wait_for_line(f"REPORT RequestId: {rid}")
        assert "\tInit Duration: " in report
        assert d.lines_for(rid)[0] == f"[echo] START RequestId: {rid} Version: $LATEST"
        r2 = d.invoke("echo", {"n": 2})
        assert r2.json() == {"n": 2}
        rid2 = r2.headers["x-amzn-requestid"]
        assert "Init Duration" not in d.wait_for_line(f"REPORT RequestId: {rid2}")
