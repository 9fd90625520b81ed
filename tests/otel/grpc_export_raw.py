#!/usr/bin/env python3
"""Sends raw messages to OTLP/gRPC's TraceService/Export with grpcio (the
C-core gRPC client), gzip-compressed, no OpenTelemetry code in between, and
prints one JSON
line per message: {"code": gRPC status name, "details": ..., "response_hex": ...}.

Usage: grpc_export_raw.py HOST:PORT HEX_MESSAGE...   ("" is the empty message;
       a message written "plain:HEX" is sent uncompressed)
"""

import json
import sys

import grpc

PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    with grpc.insecure_channel(argv[1], compression=grpc.Compression.Gzip) as channel:
        export = channel.unary_unary(PATH)  # bytes in, bytes out
        for hex_message in argv[2:]:
            compression = None
            if hex_message.startswith("plain:"):
                hex_message = hex_message[len("plain:"):]
                compression = grpc.Compression.NoCompression
            try:
                response = export(bytes.fromhex(hex_message), timeout=10, compression=compression)
                out = {"code": "OK", "details": "", "response_hex": response.hex()}
            except grpc.RpcError as e:
                out = {"code": e.code().name, "details": e.details() or "", "response_hex": ""}
            print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
