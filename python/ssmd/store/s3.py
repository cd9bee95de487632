"""A bucket on any S3-compatible store, through boto3.

Endpoint, bucket and region come from the environment's storage settings
(SSMD_S3_ENDPOINT overrides the endpoint); credentials come from boto3's usual
chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, profiles, instance roles).
A put is a single PUT, or a multipart upload for large files, which S3 makes
visible only when complete. Every error except a missing key raises
StorageError; an authentication failure is never an empty listing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)

from ssmd.exceptions import StorageError
from ssmd.store.base import ObjectInfo, ObjectStore, is_temp_name

__all__ = ["S3ObjectStore"]

_MISSING = {"NoSuchKey", "404", "NotFound"}
_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AuthorizationHeaderMalformed",
}


class S3ObjectStore(ObjectStore):
    def __init__(
        self, bucket: str, *, endpoint: str | None = None, region: str | None = None
    ) -> None:
        self.bucket = bucket
        self.endpoint = endpoint
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint or None,
            region_name=region or "us-east-1",
            config=Config(retries={"max_attempts": 3, "mode": "standard"}),
        )

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}" + (f" at {self.endpoint}" if self.endpoint else "")

    def _fail(self, what: str, exc: Exception) -> StorageError:
        code = ""
        # boto3's S3UploadFailedError is raised while handling the ClientError that says why
        client_error = exc if isinstance(exc, ClientError) else exc.__cause__ or exc.__context__
        if isinstance(client_error, ClientError):
            code = str(client_error.response.get("Error", {}).get("Code", ""))
        text = " ".join(str(exc).split())  # one line
        return StorageError(
            f"{what} on {self.url} failed{f' ({code})' if code else ''}: {text}. "
            f"Fix: {self._fix(code, exc)}"
        )

    def _fix(self, code: str, exc: Exception) -> str:
        """What to do about an error (never showing a credential)."""
        endpoint = f" --endpoint-url {self.endpoint}" if self.endpoint else ""
        if code == "NoSuchBucket":
            return (
                f"create it (`aws s3 mb s3://{self.bucket}{endpoint}`) or name an existing "
                "bucket in the environment's spec.storage"
            )
        if code in _CREDENTIAL_CODES or isinstance(
            exc, (NoCredentialsError, PartialCredentialsError)
        ):
            return (
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) to "
                f"credentials that may read and write s3://{self.bucket}"
            )
        if code in ("AccessDenied", "403", "AllAccessDisabled"):
            return f"grant these credentials s3:PutObject, GetObject, DeleteObject and ListBucket on {self.bucket}"
        if isinstance(exc, EndpointConnectionError):
            return "check the endpoint (spec.storage endpoint, SSMD_S3_ENDPOINT or --s3-endpoint)"
        return "check the bucket, the endpoint and the credentials"

    def put_atomic(self, key: str, data: bytes | Path) -> None:
        if is_temp_name(key):
            raise ValueError(f"refusing to store a temporary name {key!r}")
        try:
            if isinstance(data, Path):
                self._client.upload_file(str(data), self.bucket, key)
            else:
                self._client.put_object(Bucket=self.bucket, Key=key, Body=data)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(f"put {key}", exc) from exc
        except Exception as exc:  # boto3's S3UploadFailedError wraps ClientError
            raise self._fail(f"put {key}", exc) from exc

    def _missing(self, exc: ClientError) -> bool:
        return str(exc.response.get("Error", {}).get("Code", "")) in _MISSING

    def get(self, key: str) -> bytes:
        return b"".join(self.iter_chunks(key))

    def download(self, key: str, dest: Path) -> None:
        with open(dest, "wb") as out:
            for chunk in self.iter_chunks(key):
                out.write(chunk)

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as exc:
            if self._missing(exc):
                raise FileNotFoundError(key) from None
            raise self._fail(f"get {key}", exc) from exc
        except BotoCoreError as exc:
            raise self._fail(f"get {key}", exc) from exc
        try:
            while chunk := body.read(chunk_size):
                yield chunk
        finally:
            body.close()

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    key = item["Key"]
                    if not is_temp_name(key):
                        yield ObjectInfo(key, int(item["Size"]))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(f"list {prefix!r}", exc) from exc

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as exc:
            if self._missing(exc):
                return False
            raise self._fail(f"head {key}", exc) from exc
        except BotoCoreError as exc:
            raise self._fail(f"head {key}", exc) from exc

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(f"delete {key}", exc) from exc
