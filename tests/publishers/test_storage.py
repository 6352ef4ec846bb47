"""The storage port: the local directory adapter, and the S3 adapter against an S3-compatible server
(moto's standalone server, spoken to over HTTP by boto3 exactly as MinIO or AWS would be)."""
import socket

import boto3
import pytest

from app.adapters.storage import StorageError, build_storage
from app.adapters.storage.local import LocalStorage
from app.adapters.storage.s3 import S3Storage

KEY = "ab" * 32 + ".png"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_local_storage_round_trip(tmp_path):
    store = LocalStorage(str(tmp_path / "media"))
    assert store.get(KEY) is None
    store.put(KEY, b"bytes", "image/png")
    assert store.get(KEY) == b"bytes"
    assert [p.name for p in (tmp_path / "media").iterdir()] == [KEY]  # no half-written temporary left
    store.delete(KEY)
    store.delete(KEY)  # deleting twice is fine
    assert store.get(KEY) is None


@pytest.mark.parametrize("key", ["../secret.png", "a/b.png", "x.html", "AB" * 32 + ".png", ""])
def test_keys_that_are_not_content_names_never_reach_a_store(tmp_path, key):
    store = LocalStorage(str(tmp_path))
    with pytest.raises(ValueError):
        store.put(key, b"x", "image/png")


def test_s3_storage_round_trip_against_an_s3_server(s3_endpoint):
    boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                 region_name="us-east-1").create_bucket(Bucket="media")
    store = build_storage({"STORAGE_BACKEND": "s3", "S3_ENDPOINT": s3_endpoint, "S3_BUCKET": "media",
                           "S3_ACCESS_KEY": "test", "S3_SECRET_KEY": "test", "S3_REGION": "us-east-1",
                           "S3_TIMEOUT": 2}, instance_path="unused")
    assert isinstance(store, S3Storage)
    assert store.get(KEY) is None
    store.put(KEY, b"\x89PNG-bytes", "image/png")
    assert store.get(KEY) == b"\x89PNG-bytes"
    head = store.client.head_object(Bucket="media", Key=KEY)
    assert head["ContentType"] == "image/png"
    store.delete(KEY)
    assert store.get(KEY) is None


def test_s3_storage_that_cannot_be_reached_fails_fast_with_a_storage_error():
    port = _free_port()  # nothing listens here
    store = S3Storage(endpoint=f"http://127.0.0.1:{port}", bucket="media", access_key="k", secret_key="s",
                      region="us-east-1", timeout=0.5)
    with pytest.raises(StorageError):
        store.put(KEY, b"x", "image/png")
    with pytest.raises(StorageError):
        store.get(KEY)


def test_unknown_backend_is_refused():
    with pytest.raises(StorageError):
        build_storage({"STORAGE_BACKEND": "ftp"}, instance_path="unused")
