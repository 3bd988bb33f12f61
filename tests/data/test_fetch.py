"""fetch_dataset against a real HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import hashlib
import io
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from edgegnn.data import DATASETS, fetch_dataset, read_movielens
from edgegnn.data.fetch import MARKER
from edgegnn.errors import DownloadError

U_DATA = "1\t10\t5\t100\n2\t10\t3\t200\n2\t11\t4\t300\n"


def make_zip(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return buffer.getvalue()


@pytest.fixture
def server():
    """Serves `server.files` (path -> bytes); 404 otherwise; counts requests."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            state.requests.append(self.path)
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404, "Not Found")
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # keep test output clean
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state = type("State", (), {})()
    state.files, state.requests = {}, []
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def publish(server, path: str, data: bytes) -> tuple[str, str]:
    server.files[path] = data
    return server.url + path, hashlib.sha256(data).hexdigest()


def test_download_extract_then_cache(server, tmp_path):
    url, digest = publish(server, "/ml-100k.zip", make_zip({"ml-100k/u.data": U_DATA}))
    seen = []
    path = fetch_dataset("movielens-100k", cache_dir=tmp_path, url=url, sha256=digest,
                         progress=lambda done, total: seen.append((done, total)))
    assert path == tmp_path / "movielens-100k"
    assert (path / "ml-100k" / "u.data").read_text() == U_DATA
    assert (path / MARKER).read_text().strip() == digest
    assert seen[-1] == (len(server.files["/ml-100k.zip"]),) * 2
    assert read_movielens(path).ratings.tolist() == [5, 3, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["movielens-100k"]  # no temp left

    again = fetch_dataset("movielens-100k", cache_dir=tmp_path, url=url, sha256=digest)
    assert again == path and server.requests == ["/ml-100k.zip"]  # served from the cache


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    url, digest = publish(server, "/ml.zip", make_zip({"u.data": U_DATA}))
    wrong = "0" * 64
    with pytest.raises(DownloadError) as err:
        fetch_dataset("movielens-100k", cache_dir=tmp_path, url=url, sha256=wrong)
    assert f"expected sha256 {wrong}, got {digest}" in str(err.value)
    assert url in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_http_404_names_url(server, tmp_path):
    with pytest.raises(DownloadError) as err:
        fetch_dataset("movielens-1m", cache_dir=tmp_path, url=server.url + "/missing.zip",
                      sha256="0" * 64)
    assert f"could not download {server.url}/missing.zip: HTTP 404" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_connection_refused_names_url_and_reason(tmp_path):
    with socket.socket() as sock:  # a port that nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/ml.zip"
    with pytest.raises(DownloadError, match=f"could not download {url}: .*refused"):
        fetch_dataset("movielens-100k", cache_dir=tmp_path, url=url, sha256="0" * 64,
                      timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_unsafe_archive_is_refused(server, tmp_path):
    url, digest = publish(server, "/evil.zip", make_zip({"../escape.txt": "x"}))
    with pytest.raises(DownloadError, match="unsafe archive member '../escape.txt'"):
        fetch_dataset("movielens-100k", cache_dir=tmp_path / "cache", url=url, sha256=digest)
    assert not (tmp_path / "escape.txt").exists()
    assert list((tmp_path / "cache").iterdir()) == []


def test_stale_copy_is_replaced(server, tmp_path):
    old = tmp_path / "movielens-100k"
    (old / "junk").mkdir(parents=True)
    (old / MARKER).write_text("f" * 64)
    url, digest = publish(server, "/ml.zip", make_zip({"u.data": U_DATA}))
    path = fetch_dataset("movielens-100k", cache_dir=tmp_path, url=url, sha256=digest)
    assert sorted(p.name for p in path.iterdir()) == [MARKER, "u.data"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["movielens-100k"]


def test_unknown_name_lists_datasets(tmp_path):
    with pytest.raises(DownloadError, match="available: movielens-100k, movielens-1m"):
        fetch_dataset("netflix", cache_dir=tmp_path)
    assert DATASETS["movielens-1m"].url.endswith("/ml-1m.zip")


def test_default_cache_dir_from_env(server, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEGNN_CACHE", str(tmp_path / "env-cache"))
    url, digest = publish(server, "/ml.zip", make_zip({"u.data": U_DATA}))
    path = fetch_dataset("movielens-100k", url=url, sha256=digest)
    assert path == tmp_path / "env-cache" / "movielens-100k"
