#!/usr/bin/python3
"""Serve HTTP/1.1 uploads on 127.0.0.1 while a recording script captures them.

Usage: upload-server.py [--put-status CODE] PORT [CERT KEY]

It accepts GET, HEAD, POST, PUT, DELETE and OPTIONS, reads each request body framed by
Content-Length or by chunked transfer coding, discards it, and responds with a short text body
(none for HEAD).  PUT gets --put-status (default 201), every other method 200.  With CERT and
KEY (PEM files) it speaks TLS.  The fixture and sample recorders both start this server.
"""

import argparse
import ssl
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

READ_SIZE = 65536  # bytes read at a time, so a large upload is never held in memory


class UploadHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    put_status = 201

    def discard(self, length: int) -> int:
        """Read and drop up to length body bytes; return how many arrived before EOF."""
        received = 0
        while received < length:
            chunk = self.rfile.read(min(length - received, READ_SIZE))
            if not chunk:
                break
            received += len(chunk)
        return received

    def read_body(self) -> int:
        """Read the request body and return its length in bytes (without chunk framing)."""
        if self.headers.get("Transfer-Encoding", "").lower().endswith("chunked"):
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    # Skip the trailer section up to its closing empty line.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return total
                total += self.discard(size)
                self.rfile.readline()
        return self.discard(int(self.headers.get("Content-Length", "0")))

    def respond(self) -> None:
        try:
            received = self.read_body()
        except ValueError:
            self.send_error(400, "invalid Content-Length or chunk size")
            return
        body = (f"received {received} bytes\n" if received else "x" * 1000).encode()
        self.send_response(self.put_status if self.command == "PUT" else 200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_OPTIONS = respond

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description="HTTP/1.1 upload sink on 127.0.0.1")
    parser.add_argument("port", type=int, help="TCP port to listen on")
    parser.add_argument("cert", nargs="?", help="PEM certificate; with KEY, serve TLS")
    parser.add_argument("key", nargs="?", help="PEM private key for CERT")
    parser.add_argument("--put-status", type=int, default=201, help="status code for PUT")
    args = parser.parse_args()
    if (args.cert is None) != (args.key is None):
        parser.error("CERT and KEY go together: give both or neither")

    UploadHandler.put_status = args.put_status
    server = ThreadingHTTPServer(("127.0.0.1", args.port), UploadHandler)
    if args.cert is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
