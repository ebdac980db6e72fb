"""hello: the smallest lakefly app. Serves HTTP on $PORT with a health endpoint."""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            body = b"ok\n"
            content_type = "text/plain"
        elif self.path.startswith("/secrets/"):
            # Whether a secret reached the machine, and its length: never its value.
            value = os.environ.get(self.path[len("/secrets/"):])
            body = json.dumps({"set": value is not None, "length": len(value or "")}).encode() + b"\n"
            content_type = "application/json"
        elif self.path.startswith("/ready"):
            self.send_error(404, "not ready")
            return
        else:
            body = json.dumps(
                {
                    "hello": "world",
                    "app": os.environ.get("LAKEFLY_APP_NAME"),
                    "machine": os.environ.get("LAKEFLY_MACHINE_ID"),
                    "release": os.environ.get("LAKEFLY_RELEASE_VERSION"),
                }
            ).encode() + b"\n"
            content_type = "application/json"
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        print(fmt % args, flush=True)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8080"))
    print(f"hello listening on {port}", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
