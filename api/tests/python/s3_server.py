#!/usr/bin/env python3
"""A throwaway S3 + KMS server (moto) for Spanlake's integration tests.

Starts moto on 127.0.0.1 with an ephemeral port, creates a bucket and a
KMS key, prints ONE JSON line on stdout:

  {"endpoint": "http://127.0.0.1:PORT", "bucket": "...", "kms_key_id": "...",
   "kms_key_arn": "arn:aws:kms:...", "region": "us-east-1",
   "access_key": "test", "secret_key": "test"}

then serves until its stdin reaches EOF (so it dies with the test that
spawned it: spawn it with a *piped* stdin and keep the pipe open; a null
stdin means immediate EOF) or until SIGTERM/SIGINT.  --no-stdin ignores
stdin and serves until a signal.  moto's request log goes to stderr
(only with --verbose).

Notes for clients: use path-style requests (the endpoint is an IP address),
plain http, region us-east-1, any credentials.  The bucket has NO default
encryption, so objects are encrypted only when the writer asks for it
(x-amz-server-side-encryption: aws:kms + x-amz-server-side-encryption-aws-kms-key-id).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading

REGION = "us-east-1"
ACCESS_KEY = "test"
SECRET_KEY = "test"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto():
    """Returns (server, port)."""
    from moto.server import ThreadedMotoServer

    try:
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        if port:
            return server, port
        server.stop()
    except (AttributeError, TypeError, OSError):
        pass
    # Older moto: no port 0 / get_host_and_port. Pick a free port (racy, rare).
    port = free_port()
    try:
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    except TypeError:
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    return server, port


def client(service: str, endpoint: str):
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bucket", default="spanlake-test", help="bucket to create (default spanlake-test)")
    ap.add_argument("--no-stdin", action="store_true", help="don't stop on stdin EOF; only on SIGTERM/SIGINT")
    ap.add_argument("--verbose", action="store_true", help="log moto's requests to stderr")
    args = ap.parse_args()

    # Never pick up real AWS settings from the environment or ~/.aws.
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
                "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_KMS"):
        os.environ.pop(var, None)
    os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    os.environ["no_proxy"] = os.environ["NO_PROXY"] = "*"
    logging.basicConfig(stream=sys.stderr, level=logging.INFO if args.verbose else logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.INFO if args.verbose else logging.ERROR)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    server, port = start_moto()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        client("s3", endpoint).create_bucket(Bucket=args.bucket)
        key = client("kms", endpoint).create_key(
            Description="spanlake test key", KeyUsage="ENCRYPT_DECRYPT", KeySpec="SYMMETRIC_DEFAULT"
        )["KeyMetadata"]
    except Exception:
        server.stop()
        raise

    info = {
        "endpoint": endpoint,
        "bucket": args.bucket,
        "kms_key_id": key["KeyId"],
        "kms_key_arn": key["Arn"],
        "region": REGION,
        "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY,
    }
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()

    if not args.no_stdin:
        def wait_eof() -> None:
            try:
                while sys.stdin.buffer.read(65536):
                    pass
            except (OSError, ValueError):
                pass
            stop.set()

        threading.Thread(target=wait_eof, daemon=True).start()

    while not stop.wait(0.5):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
