"""Raw HTTP over a blocking TCP socket, for requests treq cannot express (run in a thread)."""

from __future__ import annotations

import select
import socket
import time
from urllib.parse import urlsplit


def address(url: str) -> tuple[str, int]:
    """(host, port) of a server URL."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def read_response(sock: socket.socket, timeout: float) -> bytes:
    """Read until the server closes the connection, a whole response arrived, or timeout."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
        head, sep, body = final(data).partition(b"\r\n\r\n")
        if sep:
            length = [
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ]
            if length and len(body) >= length[0]:
                break
            if b"transfer-encoding: chunked" in head.lower() and body.endswith(b"0\r\n\r\n"):
                break
    return data


def exchange(url: str, raw: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes on a new connection and return what the server answers."""
    with socket.create_connection(address(url), timeout=timeout) as sock:
        try:
            sock.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_response(sock, timeout)


def final(response: bytes) -> bytes:
    """The response without the interim 1xx responses before it (100 Continue)."""
    while response.startswith(b"HTTP/1.1 1"):
        response = response.partition(b"\r\n\r\n")[2]
    return response


def status_of(response: bytes) -> int:
    """The status code of a raw HTTP response (0 if there is none)."""
    parts = final(response).split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        return 0
    return int(parts[1])


def body_of(response: bytes) -> bytes:
    """The body of a raw HTTP response, de-chunked if it is chunked."""
    head, _, body = final(response).partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" not in head.lower():
        return body
    data = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        data += rest[:size]
        body = rest[size + 2 :]
    return data


def send_until_answered(url: str, head: bytes, chunk: bytes, most: int) -> tuple[int, bytes]:
    """Send head, then chunk after chunk (up to most bytes) until the server answers.

    Returns (bytes of body sent, the answer).
    """
    with socket.create_connection(address(url), timeout=10) as sock:
        sock.sendall(head)
        sent = 0
        while sent < most:
            readable, _, _ = select.select([sock], [], [], 0.01)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        return sent, read_response(sock, 10)


def dribble(
    url: str, prefix: bytes, raw: bytes, interval: float, timeout: float
) -> tuple[float, int, bytes]:
    """Send prefix, then raw one byte every interval seconds, until the server answers.

    Returns (seconds until answered or closed, bytes of raw sent, the answer).
    """
    started = time.monotonic()
    with socket.create_connection(address(url), timeout=timeout) as sock:
        sock.sendall(prefix)
        sent = 0
        answer = b""
        while time.monotonic() - started < timeout:
            readable, _, _ = select.select([sock], [], [], interval)
            if readable:
                answer = read_response(sock, 2)
                break
            try:
                sock.sendall(raw[sent % len(raw) : sent % len(raw) + 1])
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 1
        return time.monotonic() - started, sent, answer
