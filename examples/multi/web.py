"""multi/web: answers HTTP on $PORT with the number of jobs the worker has done."""

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

QUEUE = os.environ.get("QUEUE_DIR", "/data/queue")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            done = len(os.listdir(QUEUE))
        except OSError:
            done = 0
        body = f"jobs done: {done}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
