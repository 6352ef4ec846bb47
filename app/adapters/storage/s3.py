"""The S3 storage adapter (AWS S3, MinIO or any S3-compatible store) through boto3, with connect and
read timeouts and few retries, so a store that is down fails a request quickly instead of hanging it."""
from __future__ import annotations

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from app.adapters.storage import StorageError, check_key


class S3Storage:
    def __init__(self, *, endpoint: str | None, bucket: str, access_key: str | None, secret_key: str | None,
                 region: str, timeout: float) -> None:
        if not bucket:
            raise StorageError("S3_BUCKET is not set.")
        self.bucket = bucket
        self.client = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id=access_key, aws_secret_access_key=secret_key,
            region_name=region,
            config=Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 2, "mode": "standard"},
                          s3={"addressing_style": "path"}),
        )

    def put(self, key: str, data: bytes, content_type: str) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=check_key(key), Body=data, ContentType=content_type)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError("The file store is not answering; please try again in a minute.") from exc

    def get(self, key: str) -> bytes | None:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=check_key(key))
            return answer["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise StorageError("The file store refused to hand the file over.") from exc
        except BotoCoreError as exc:
            raise StorageError("The file store is not answering; please try again in a minute.") from exc

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=check_key(key))
        except (BotoCoreError, ClientError) as exc:
            raise StorageError("The file store is not answering; please try again in a minute.") from exc
