#!/usr/bin/env python3
"""Apache's Python Avro IPC `Requestor` pushing Flume events over Netty framing.

PyPI `avro` ships no socket transport, only HTTP; this is the thin glue the spec (§8.2)
describes: a transceiver that opens a fresh TCP connection per call and wraps each request
as one Netty frame. Python hashes the protocol differently from Java (no doc string), so the
first call gets a NONE handshake and is re-sent with the protocol text; later connections are
answered BOTH from the server's cache of learned client protocols.

Usage: py_client.py PORT PROTOCOL_FILE CALLS BATCH
Prints one JSON line per call: {"call": i, "message": ..., "status": "OK"} and a summary line.
"""
import io
import json
import socket
import struct
import sys

import avro.ipc
import avro.protocol


class NettyTransceiver:
    def __init__(self, host, port, timeout=10.0):
        self.host, self.port, self.timeout = host, port, timeout
        self.serial = 0
        self.connections = 0

    @property
    def remote_name(self):
        return f"{self.host}:{self.port}"

    def _read_exact(self, sock, n):
        out = io.BytesIO()
        while out.tell() < n:
            chunk = sock.recv(n - out.tell())
            if not chunk:
                raise EOFError(f"connection closed after {out.tell()} of {n} bytes")
            out.write(chunk)
        return out.getvalue()

    def transceive(self, request):
        self.serial += 1
        self.connections += 1
        with socket.create_connection((self.host, self.port), timeout=self.timeout) as sock:
            sock.sendall(struct.pack(">iii", self.serial, 1, len(request)) + request)
            serial, count = struct.unpack(">ii", self._read_exact(sock, 8))
            if serial != self.serial:
                raise ValueError(f"reply serial {serial} != request serial {self.serial}")
            parts = []
            for _ in range(count):
                (length,) = struct.unpack(">i", self._read_exact(sock, 4))
                parts.append(self._read_exact(sock, length))
            return b"".join(parts)

    def close(self):
        pass


def main():
    port, proto_file, calls, batch = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    with open(proto_file, encoding="utf-8") as f:
        protocol = avro.protocol.parse(f.read())
    transceiver = NettyTransceiver("127.0.0.1", port)
    requestor = avro.ipc.Requestor(protocol, transceiver)
    seq = 0
    for call in range(calls):
        if batch == 1:
            event = {"headers": {"seq": str(seq), "peer": "python"}, "body": f"py-{seq}".encode()}
            status = requestor.request("append", {"event": event})
            seq += 1
            message = "append"
        else:
            events = []
            for _ in range(batch):
                events.append({"headers": {"seq": str(seq), "peer": "python", "ü": "ß"}, "body": f"py-{seq}".encode()})
                seq += 1
            status = requestor.request("appendBatch", {"events": events})
            message = "appendBatch"
        print(json.dumps({"call": call, "message": message, "status": status}), flush=True)
    print(json.dumps({"summary": True, "events": seq, "connections": transceiver.connections}), flush=True)


if __name__ == "__main__":
    main()
