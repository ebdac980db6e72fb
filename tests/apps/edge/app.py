"""An app for the edge tests: echoes what the edge forwarded, streams server-sent events
and chunked bodies, serves a page to compress, echoes one WebSocket message, counts an
upload, holds a request open, hangs up on demand and answers wrongly on purpose; with
ECHO_PORT, echoes raw TCP too."""

import base64
import hashlib
import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MACHINE = os.environ.get("LAKEFLY_MACHINE_ID", "")
APP = os.environ.get("FLY_APP_NAME", "")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, status, body, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/health":
            self.reply(200, b"ok\n", "text/plain")
        elif self.path == "/sse":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            self.wfile.write(b"id: 1\ndata: first\n\n")
            self.wfile.flush()
            # The second event only comes much later: the first must arrive on its own.
            time.sleep(60)
            self.wfile.write(b"id: 2\ndata: second\n\n")
        elif self.path == "/ws":
            self.websocket_echo()
        elif self.path == "/page":
            # A page worth compressing, with a strong ETag.
            body = b"<p>hello, edge</p>\n" * 300
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", '"page-1"')
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/trickle":
            # Text streamed in parts, the second much later: the first must arrive on
            # its own, compressed or not.
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            part = b"first part\n" * 100
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.flush()
            time.sleep(60)
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/slow":
            # The head goes out at once, the body later: a machine stopped in between
            # would cut the response, which no retry can mend.
            body = b"slow and steady\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.flush()
            time.sleep(0.2)
            self.wfile.write(body)
        elif self.path == "/drop":
            # Hangs up without an answer, as a crashing handler would.
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif self.path == "/chunked":
            # A body in chunks, as an app that streams without knowing the length sends it.
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"one ", b"two ", b"three"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/big":
            # More than the socket buffers between the app and a client hold.
            size = 64 << 20
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            chunk = b"x" * (1 << 16)
            try:
                for _ in range(size >> 16):
                    self.wfile.write(chunk)
            except OSError:
                self.close_connection = True
        elif self.path == "/broken-chunks":
            # A chunked body whose first chunk size is no number, as a buggy app writes it.
            self.close_connection = True
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n"
            )
        elif self.path == "/two-framings":
            # Framed two ways: the chunked framing wins (RFC 9112 6.3), the length is wrong.
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n0\r\n\r\n"
            )
        elif self.path == "/no-content":
            # A 204 that claims a body anyway: no body follows, whatever the fields say.
            self.wfile.write(
                b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\nX-App: yes\r\n\r\n"
            )
        elif self.path == "/hold":
            # Occupies the machine until the client goes away.
            time.sleep(60)
            self.reply(200, b"held\n", "text/plain")
        else:
            headers = {k.lower(): v for k, v in self.headers.items()}
            body = json.dumps(
                {
                    "app": APP,
                    "machine": MACHINE,
                    "path": self.path,
                    "port": self.server.server_address[1],
                    "headers": headers,
                }
            )
            self.reply(200, body.encode() + b"\n")
            self.hang_up_after("/close")

    def do_HEAD(self):
        # The head a GET would have, without its body.
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "12")
        self.end_headers()

    def do_POST(self):
        if self.path == "/refuse":
            # Refuses an upload at once, unread, as an app with a size limit does, and
            # holds the connection without reading: the answer must reach the client
            # while it is still sending.
            body = b"upload refused\n"
            self.send_response(413)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            time.sleep(60)
            self.close_connection = True
            return
        if self.path == "/ignore":
            # Neither reads the body nor answers, as a wedged app does.
            time.sleep(60)
            self.close_connection = True
            return
        if self.path == "/duplex":
            # Answers as it reads, as a streaming app does: each chunk of the request
            # body is echoed at once, and the answer ends when the body does.
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                data = self.rfile.read(size)
                self.rfile.readline()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
                if size == 0:
                    return
        length = self.headers.get("Content-Length")
        digest = hashlib.sha256()
        total = 0
        if length is not None:
            left = int(length)
            while left > 0:
                chunk = self.rfile.read(min(left, 1 << 16))
                if not chunk:
                    break
                digest.update(chunk)
                total += len(chunk)
                left -= len(chunk)
        else:
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                left = size
                while left > 0:
                    chunk = self.rfile.read(min(left, 1 << 16))
                    digest.update(chunk)
                    total += len(chunk)
                    left -= len(chunk)
                self.rfile.readline()
        body = json.dumps({"bytes": total, "sha256": digest.hexdigest(), "machine": MACHINE})
        self.reply(200, body.encode() + b"\n")
        self.hang_up_after("/close")

    def hang_up_after(self, path):
        if self.path.split("?")[0] == path:
            # Hangs up after answering without saying so, as an app whose keep-alive
            # timeout is short does to a connection the edge keeps for the next request.
            self.close_connection = True

    def websocket_echo(self):
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        head = self.rfile.read(2)
        length = head[1] & 0x7F
        if length == 126:
            length = int.from_bytes(self.rfile.read(2), "big")
        mask = self.rfile.read(4)
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(length)))
        frame = bytes([0x81, len(data)]) + data if len(data) < 126 else b""
        self.wfile.write(frame)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, fmt, *args):
        pass


def echo(listener):
    """Echoes each connection's bytes back: a raw TCP service."""
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=echo_one, args=(conn,), daemon=True).start()


def echo_one(conn):
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


if __name__ == "__main__":
    # $PORT, and EXTRA_PORT when set (a second internal port, as an admin service has).
    ports = [int(os.environ["PORT"])]
    if os.environ.get("EXTRA_PORT"):
        ports.append(int(os.environ["EXTRA_PORT"]))
    servers = [Server(("127.0.0.1", port), Handler) for port in ports]
    # ECHO_PORT when set: a raw TCP echo service, listening before the app is healthy.
    if os.environ.get("ECHO_PORT"):
        listener = socket.create_server(("127.0.0.1", int(os.environ["ECHO_PORT"])))
        threading.Thread(target=echo, args=(listener,), daemon=True).start()
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"edge test app on {ports}", flush=True)
    servers[0].serve_forever()
