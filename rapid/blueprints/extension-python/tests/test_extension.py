"""Run with: python -m pytest tests (the extension against a small Extensions API here)."""

import http.server
import json
import os
import subprocess
import sys
import threading

LAYER = os.path.join(os.path.dirname(__file__), "..", "layer")


class Api(http.server.BaseHTTPRequestHandler):
    events = [{"eventType": "INVOKE", "requestId": "r-1"}, {"eventType": "SHUTDOWN", "shutdownReason": "spindown"}]

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self._answer({"functionName": "HelloFunction"}, {"Lambda-Extension-Identifier": "id-1"})

    def do_GET(self):
        self._answer(self.events.pop(0), {})

    def _answer(self, obj, headers):
        body = json.dumps(obj).encode()
        self.send_response(200)
        for k, v in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_extension_sees_invoke_and_shutdown():
    server = http.server.HTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = subprocess.run([sys.executable, os.path.join(LAYER, "extensions", "rapid-logger")],
                             env={**os.environ, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_port}"},
                             capture_output=True, text=True, timeout=30)
    finally:
        server.shutdown()
    assert out.returncode == 0
    assert "[rapid-logger] received INVOKE r-1" in out.stdout
    assert "shutting down (spindown)" in out.stdout
