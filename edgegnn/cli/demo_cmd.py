"""`edgegnn demo ARTIFACT`: the artifact in a browser page, recommending live as items are picked.

    edgegnn demo artifacts/cpu             # then open http://127.0.0.1:8000/

Serves the demo page, the JavaScript runtime and onnxruntime-web on 127.0.0.1 only
(`edgegnn.demo`); the model runs in the visitor's browser. Needs the JavaScript runtime's
folder (runtimes/js of a source checkout, after `npm ci` there) or --runtime-dir / --ort-web.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgegnn.cli.output import setup_logging, stdout, user_errors
from edgegnn.errors import ConfigError


def demo(
    artifact: Annotated[Path, typer.Argument(metavar="ARTIFACT", help="An ONNX artifact folder from "
                                                                      "`edgegnn export`.")],
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (0: any free port).")] = 8000,
    runtime_dir: Annotated[Optional[Path], typer.Option(
        "--runtime-dir", help="The JavaScript runtime's folder [default: runtimes/js of this checkout]")] = None,
    ort_web: Annotated[Optional[Path], typer.Option(
        "--ort-web", help="onnxruntime-web's dist folder [default: RUNTIME_DIR/node_modules/onnxruntime-web/dist]"
    )] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log each request.")] = False,
) -> None:
    """Serve a browser demo of an artifact on 127.0.0.1 (the model runs in the browser)."""
    setup_logging(verbose)
    with user_errors():
        from edgegnn.demo import DemoServer
        from edgegnn.runtime.manifest import read_manifest

        if read_manifest(artifact)["kind"] != "onnx":
            raise ConfigError("ARTIFACT", str(artifact), "an ONNX artifact (the browser runs ONNX Runtime Web); "
                              "export one with --target cpu-x86_64")
        try:
            server = DemoServer(artifact, port=port, runtime_dir=runtime_dir, ort_web=ort_web)
        except OSError as error:
            raise ConfigError("--port", port, f"a free port on 127.0.0.1 ({error.strerror})") from None
    stdout.print(f"serving {artifact} at {server.url} (Ctrl-C stops)", highlight=False, soft_wrap=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
