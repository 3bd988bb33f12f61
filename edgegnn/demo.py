"""A static server for the browser demo: an artifact and the JavaScript runtime on 127.0.0.1.

    server = DemoServer(artifact_dir)           # port 0: a free port
    server.start()                              # in a thread; server.url is the demo page
    ...
    server.stop()

It serves, under one origin (so the page's fetches and WebCrypto work: 127.0.0.1 is a secure
context), these mounts:
    /              the demo page (runtimes/js/demo)
    /src/          the JavaScript runtime (runtimes/js/src)
    /ort/          onnxruntime-web's dist folder (its .mjs and .wasm files)
    /artifact/     the artifact folder
and any extra mounts given (the tests add their golden folder). Everything runs in the
visitor's browser: the server only hands out files. The standard library's http.server does
the work; this module maps URL prefixes to folders and sets the MIME types a module script
and a streamed WebAssembly compile need (.mjs and .wasm are unknown to older mimetypes).
"""

from __future__ import annotations

import functools
import http.server
import logging
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

from edgegnn.errors import ConfigError
from edgegnn.runtime.manifest import read_manifest

log = logging.getLogger(__name__)
JS_RUNTIME = Path(__file__).resolve().parents[1] / "runtimes" / "js"      # a source checkout's
TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm", ".json": "application/json",
         ".npy": "application/octet-stream", ".onnx": "application/octet-stream", ".html": "text/html; charset=utf-8"}


def js_runtime_paths(runtime_dir: Path | None = None, ort_web: Path | None = None) -> dict[str, Path]:
    """{"": demo page folder, "src": runtime sources, "ort": onnxruntime-web dist}, each checked."""
    root = Path(runtime_dir) if runtime_dir else JS_RUNTIME
    if not (root / "src" / "browser.js").is_file():
        raise ConfigError("runtime_dir", str(root), "a folder holding the JavaScript runtime (src/browser.js): "
                          "edgegnn's runtimes/js in a source checkout")
    dist = Path(ort_web) if ort_web else root / "node_modules" / "onnxruntime-web" / "dist"
    if not (dist / "ort.wasm.min.mjs").is_file():
        raise ConfigError("ort_web", str(dist), f"onnxruntime-web's dist folder (run `npm ci` in {root})")
    return {"": root / "demo", "src": root / "src", "ort": dist}


class DemoServer:
    """Serve `artifact` with the demo page and the runtime on http://127.0.0.1:PORT/."""

    def __init__(self, artifact: str | Path | None, *, port: int = 0, runtime_dir: Path | None = None,
                 ort_web: Path | None = None, mounts: dict[str, Path] | None = None) -> None:
        self.mounts = js_runtime_paths(runtime_dir, ort_web)
        if artifact is not None:
            read_manifest(artifact)                     # one clear line now, not a blank page later
            self.mounts["artifact"] = Path(artifact)
        self.mounts.update({name.strip("/"): Path(path) for name, path in (mounts or {}).items()})
        handler = functools.partial(_Handler, mounts=self.mounts)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> "DemoServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="edgegnn-demo", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(http.server.SimpleHTTPRequestHandler):
    """GET/HEAD of files under the mounts (longest prefix wins); no listings outside them."""

    def __init__(self, *args, mounts: dict[str, Path], **kwargs) -> None:
        self.mounts = mounts
        super().__init__(*args, **kwargs)

    def translate_path(self, path: str) -> str:
        parts = [p for p in unquote(urlsplit(path).path).split("/") if p]
        if any(p in (".", "..") or "\\" in p for p in parts):
            return "/nonexistent"
        mount = parts[0] if parts and parts[0] in self.mounts else ""
        rest = parts[1:] if mount else parts
        return str(self.mounts[mount].joinpath(*rest))

    def guess_type(self, path) -> str:
        return TYPES.get(Path(str(path)).suffix, super().guess_type(path))

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def list_directory(self, path):
        self.send_error(404, "no listing")
        return None

    def log_message(self, format: str, *args) -> None:
        log.debug("%s %s", self.address_string(), format % args)
