#!/usr/bin/env python3
"""s3_list.py ENDPOINT BUCKET PREFIX

Prints every object under PREFIX (all pages), one per line, sorted by key:

  KEY <TAB> ServerSideEncryption <TAB> SSEKMSKeyId

as head_object reports them ('-' where a header is absent), e.g.

  single-tenant/blocks/0001/data.parquet\taws:kms\tarn:aws:kms:us-east-1:123456789012:key/...

Credentials test/test and region us-east-1 unless --access-key/--secret-key/
--region say otherwise.  Exit 0 also when nothing matches (no lines).
"""
from __future__ import annotations

import argparse
import os
import sys


def main() -> int:
    ap = argparse.ArgumentParser(usage=__doc__.split("\n\n")[0])
    ap.add_argument("endpoint")
    ap.add_argument("bucket")
    ap.add_argument("prefix", nargs="?", default="")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--access-key", default="test")
    ap.add_argument("--secret-key", default="test")
    args = ap.parse_args()

    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
                "AWS_ENDPOINT_URL_S3"):
        os.environ.pop(var, None)
    os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    os.environ["no_proxy"] = os.environ["NO_PROXY"] = "*"

    import boto3
    from botocore.config import Config

    s3 = boto3.client(
        "s3",
        endpoint_url=args.endpoint,
        region_name=args.region,
        aws_access_key_id=args.access_key,
        aws_secret_access_key=args.secret_key,
        config=Config(s3={"addressing_style": "path"}),
    )
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=args.bucket, Prefix=args.prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    for key in sorted(keys):
        head = s3.head_object(Bucket=args.bucket, Key=key)
        sse = head.get("ServerSideEncryption") or "-"
        kms = head.get("SSEKMSKeyId") or "-"
        sys.stdout.write(f"{key}\t{sse}\t{kms}\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
