"""The JavaScript runtime (runtimes/js) answers as the Python one: under Node (onnxruntime-node)
and in headless Chromium (onnxruntime-web, served by `edgegnn demo`'s server on 127.0.0.1),
on the golden vectors of every ONNX storage kind (tests/runtime/golden.py); the demo page shows
the Python runtime's top-K after a few clicks.

Needs `npm ci` in runtimes/js (`make test` runs it) and Debian's chromium (`.ci/run` installs
it); EDGEGNN_SKIP_JS=1 skips these tests on purpose, anything else missing fails them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from edgegnn.runtime import Recommender
from edgegnn.runtime.manifest import check_schema
from tests.runtime.golden import write_golden

REPO = Path(__file__).resolve().parents[2]
JS = REPO / "runtimes" / "js"
GOLDEN = JS / "test" / "golden"         # where `npm test` looks by default (gitignored)
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
DEMO_CLICKS = ["café", "ab5", "b7"]


def _needs(what: str, present: bool, how: str) -> None:
    if present:
        return
    if os.environ.get("EDGEGNN_SKIP_JS") == "1":
        pytest.skip(f"EDGEGNN_SKIP_JS=1: {what} is not needed")
    pytest.fail(f"{what} is missing: {how} (or set EDGEGNN_SKIP_JS=1 to skip the JavaScript runtime's tests)")


@pytest.fixture(scope="module")
def golden() -> dict:
    _needs("node", shutil.which("node") is not None, "install Node.js 20")
    _needs("runtimes/js/node_modules", (JS / "node_modules" / "onnxruntime-node").is_dir(), "run `make js`")
    return json.loads(write_golden(GOLDEN).read_text())


def test_every_golden_manifest_meets_the_schema(golden):
    for entry in golden["artifacts"] + golden["refused"]:
        check_schema(json.loads((GOLDEN / entry["dir"] / "manifest.json").read_text()), entry["dir"])
    kinds = {json.loads((GOLDEN / e["dir"] / "manifest.json").read_text())["model"]["kind"]
             for e in golden["artifacts"]}
    assert {"lightgcn", "sage", "gat", "graph-filter"} <= kinds, kinds
    assert sum("bounded" in case for entry in golden["artifacts"] for case in entry["cases"]) >= 10


def test_node_runtime_answers_every_golden_query(golden):
    done = subprocess.run(["node", "--test", "test/golden.test.js"], cwd=JS, capture_output=True, text=True,
                          env={**os.environ, "EDGEGNN_GOLDEN": str(GOLDEN)}, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout and "# pass 6" in done.stdout, done.stdout[-2000:]


def test_browser_runtime_and_demo_page_answer_as_python(golden, tmp_path):
    from edgegnn.demo import DemoServer

    _needs("chromium", Path(CHROMIUM).is_file(), "apt-get install chromium (.ci/run does)")
    artifact = GOLDEN / "onnx-odd-ids-popularity"
    server = DemoServer(artifact, mounts={"golden": GOLDEN, "test": JS / "test"}).start()
    screenshot = tmp_path / "demo.png"
    try:
        done = subprocess.run(["node", "test/browser.mjs", server.url, json.dumps(DEMO_CLICKS), str(screenshot)],
                              cwd=JS, capture_output=True, text=True, timeout=400)
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["golden"] == {"artifacts": len(golden["artifacts"]), "failures": []}
    assert report["errors"] == []
    expected = Recommender.open(artifact).recommend(DEMO_CLICKS, k=10).ids
    assert report["demo"]["shown"] == expected and len(expected) == 10
    png = screenshot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000      # a rendered page, not a blank one


def test_the_demo_command_serves_the_page_runtime_and_artifact(golden):
    artifact = GOLDEN / "onnx-fp32"
    command = [sys.executable, "-m", "edgegnn", "demo", str(artifact), "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "COLUMNS": "200"})
    try:
        line = process.stdout.readline()
        url = line.split(" at ")[1].split()[0]
        pages = {path: urllib.request.urlopen(url + path, timeout=10) for path in
                 ("", "demo.js", "src/browser.js", "ort/ort.wasm.min.mjs", "ort/ort-wasm-simd-threaded.wasm",
                  "artifact/manifest.json")}
        types = {path: response.headers["Content-Type"] for path, response in pages.items()}
        assert types["ort/ort-wasm-simd-threaded.wasm"] == "application/wasm"
        assert types["src/browser.js"] == types["ort/ort.wasm.min.mjs"] == "text/javascript"
        assert (json.loads(pages["artifact/manifest.json"].read())
                == json.loads((artifact / "manifest.json").read_text()))
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(url + "artifact/../../../etc/passwd", timeout=10)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize("argument, message", [("/nonexistent", "no such artifact directory"),
                                               ("tflite", "an ONNX artifact (the browser runs ONNX Runtime Web)")])
def test_the_demo_command_refuses_what_a_browser_cannot_run(golden, argument, message):
    path = GOLDEN / golden["refused"][0]["dir"] if argument == "tflite" else argument
    done = subprocess.run([sys.executable, "-m", "edgegnn", "demo", str(path)], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=60)
    assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr
