"""jobs: an app with scheduled work, like a discovery daemon that needs periodic
maintenance calls. Serves HTTP on $PORT; POST /maintenance is what the job calls."""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CALLS = {"maintenance": 0}


class Handler(BaseHTTPRequestHandler):
    def reply(self, status, body):
        data = json.dumps(body).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            self.reply(200, {"ok": True})
        else:
            self.reply(200, {"maintenance_calls": CALLS["maintenance"]})

    def do_POST(self):
        if self.path == "/maintenance":
            CALLS["maintenance"] += 1
            print(f"maintenance call {CALLS['maintenance']} from job {self.headers.get('X-Lakefly-Job')}", flush=True)
            self.reply(200, {"compacted": True, "calls": CALLS["maintenance"]})
        else:
            self.reply(404, {"error": "no such path"})

    def log_message(self, fmt, *args):
        pass


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8080"))
    print(f"jobs example listening on {port}", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
