"""A boto3/botocore failure told in one line: the bucket, the endpoint, and what to do.

Used where a failed S3 request is not about an artifact (those are the accessors' errors,
:meth:`registry.accessors.s3.S3Backend.translate`): checking a destination bucket before writing
to it, and ``manage.py``'s last resort for an S3 error no command explained.
"""

from __future__ import annotations

from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from registry.accessors.s3 import resolve_endpoint

CREDENTIALS_HINT = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"


def endpoint_label(endpoint_url: str | None = None) -> str:
    """The S3 endpoint as shown in messages: the given one, the environment's, or AWS."""
    return endpoint_url or resolve_endpoint() or "AWS S3"


def describe_s3_error(
    exc: BaseException, bucket: str | None = None, endpoint_url: str | None = None
) -> str:
    """What a failed S3 request means, in one sentence that names the bucket (``bucket``, or the
    one S3 names in its answer) and the endpoint, and says what to do."""
    endpoint = endpoint_label(endpoint_url)
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        bucket = bucket or error.get("BucketName")
        named = f"bucket {bucket!r}" if bucket else "the bucket"
        if code == "NoSuchBucket" or (exc.operation_name == "HeadBucket" and status == 404):
            return (
                f"S3 {named} does not exist at {endpoint}: create it, or check the bucket name "
                "and the endpoint (AWS_ENDPOINT_URL)."
            )
        if status == 403:
            return (
                f"S3 at {endpoint} denied {exc.operation_name} on {named} ({code}): check that "
                f"the credentials in {CREDENTIALS_HINT} are valid there and allowed to do it."
            )
        message = error.get("Message") or ""
        return (
            f"S3 at {endpoint} refused {exc.operation_name} on {named}: {code} (HTTP {status})"
            f"{f' {message}' if message else ''}."
        )
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return f"No usable AWS credentials for S3 at {endpoint}: set {CREDENTIALS_HINT}."
    if isinstance(exc, EndpointConnectionError | BotoConnectionError):  # names the URL tried
        return f"Cannot reach S3: {exc}. Check the endpoint (AWS_ENDPOINT_URL) and the network."
    return f"An S3 request to {endpoint} failed: {exc}."
