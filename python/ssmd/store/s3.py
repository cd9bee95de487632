"""A bucket on any S3-compatible store, through boto3.

Endpoint, bucket and region come from the environment's storage settings
(SSMD_S3_ENDPOINT overrides the endpoint); credentials come from boto3's usual
chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, profiles, instance roles).
A put is a single PUT, or a multipart upload for large files, which S3 makes
visible only when complete. Every error except a missing key raises
StoreUnavailableError (a StorageError) saying whether it is transient (no answer, a
timeout, a 5xx, throttling) or a refusal that needs a fix; an authentication failure
is never an empty listing. Timeouts are short (5 s to connect, 30 s without a byte), so
that a store that stops answering is found out in seconds, not minutes.
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
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from urllib3.exceptions import HTTPError as TransportError

from ssmd.exceptions import StoreUnavailableError
from ssmd.store.base import ObjectInfo, ObjectStore, is_temp_name

__all__ = ["S3ObjectStore"]

_MISSING = {"NoSuchKey", "404", "NotFound"}
# No usable answer: botocore's own errors, and the HTTP library's when a connection breaks
# while botocore reads a response it does not stream (an error's body), which botocore
# lets through unwrapped.
_UNANSWERED = (BotoCoreError, TransportError)
_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AuthorizationHeaderMalformed",
}
# Error codes of a store that is there but cannot serve now: tried again, never a fix.
_TRANSIENT_CODES = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequests",
    "RequestTimeout",
    "RequestTimeoutException",
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
            config=Config(
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
            ),
        )

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}" + (f" at {self.endpoint}" if self.endpoint else "")

    def _fail(self, what: str, exc: Exception) -> StoreUnavailableError:
        code = ""
        status = 0
        # boto3's S3UploadFailedError is raised while handling the error that says why
        cause = (
            exc
            if isinstance(exc, BotoCoreError | ClientError | TransportError)
            else exc.__cause__ or exc.__context__
        )
        if isinstance(cause, ClientError):
            code = str(cause.response.get("Error", {}).get("Code", ""))
            status = int(cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        transient = (
            isinstance(cause, BotoConnectionError | HTTPClientError | TransportError)
            or code in _TRANSIENT_CODES
            or status >= 500
        )
        kind = code or type(cause if isinstance(cause, Exception) else exc).__name__
        where = self.bucket + (f" at {self.endpoint}" if self.endpoint else "")
        text = " ".join(str(exc).split())  # one line
        return StoreUnavailableError(
            f"{what} on {self.url} failed ({kind}): {text}. Fix: {self._fix(code, cause or exc)}",
            bucket=self.bucket,
            state=f"s3 {'unreachable' if transient else 'refused'}: {where}",
            code=kind,
            transient=transient,
        )

    def _fix(self, code: str, exc: BaseException) -> str:
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
            return (
                "check the endpoint (spec.storage endpoint, SSMD_S3_ENDPOINT or "
                "--s3-endpoint) and that the store is up"
            )
        if isinstance(exc, BotoConnectionError | HTTPClientError) or code in _TRANSIENT_CODES:
            return "none needed if the store is only away for a while; else check that it is up"
        return "check the bucket, the endpoint and the credentials"

    def put_atomic(self, key: str, data: bytes | Path) -> None:
        if is_temp_name(key):
            raise ValueError(f"refusing to store a temporary name {key!r}")
        try:
            if isinstance(data, Path):
                self._client.upload_file(str(data), self.bucket, key)
            else:
                self._client.put_object(Bucket=self.bucket, Key=key, Body=data)
        except (ClientError, *_UNANSWERED) as exc:
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
        except _UNANSWERED as exc:
            raise self._fail(f"get {key}", exc) from exc
        try:
            while chunk := body.read(chunk_size):
                yield chunk
        except _UNANSWERED as exc:  # the connection dropped half way
            raise self._fail(f"get {key}", exc) from exc
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
        except (ClientError, *_UNANSWERED) as exc:
            raise self._fail(f"list {prefix!r}", exc) from exc

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as exc:
            if self._missing(exc):
                return False
            raise self._fail(f"head {key}", exc) from exc
        except _UNANSWERED as exc:
            raise self._fail(f"head {key}", exc) from exc

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, *_UNANSWERED) as exc:
            raise self._fail(f"delete {key}", exc) from exc
