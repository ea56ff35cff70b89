"""Staged-update test material: release keys, a small signed bundle laid out like
image/make-bundle's, its manifest signed by the vendor's own code, and an HTTPS server that
serves the bundle (a real TLS listener on a free port, certificates by openssl)."""

from __future__ import annotations

import io
import ssl
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from image_support import signing_key
from pki import make_pki

from edged.fleet.releases import release_document, signed

NOW = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)  # 04:00 in Madrid


def keys(directory: Path) -> tuple[Path, Path, Path, Path]:
    """(trusted key, its signers file, another key, its signers file)."""
    key, signers = signing_key(directory / "vendor")
    other, other_signers = signing_key(directory / "stranger", "stranger")
    return key, signers, other, other_signers


def make_bundle(directory: Path, version: str, key: Path) -> Path:
    """A bundle with the layout update-edged checks (one edged wheel, the lock, wheels/),
    signed like image/make-bundle signs it."""
    directory.mkdir(parents=True, exist_ok=True)
    bundle = directory / f"edged-{version}-x86_64.bundle"
    with tarfile.open(bundle, "w") as tar:
        for name, data in (
            (f"./edged-{version}-py3-none-any.whl", b"PK wheel " + version.encode()),
            ("./requirements.lock", b"# empty\n"),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        folder = tarfile.TarInfo("./wheels")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
    subprocess.run(
        ["ssh-keygen", "-q", "-Y", "sign", "-f", str(key), "-n", "edged-update", str(bundle)],
        check=True,
    )
    return bundle


def document(bundle: Path, url: str, **overrides: Any) -> dict[str, Any]:
    """The manifest document as ``edged fleet release`` builds it; ``overrides`` are the
    function's keywords (start, canary_percent, waves, window, ...)."""
    values: dict[str, Any] = {
        "start": NOW - timedelta(hours=1),
        "canary_percent": 50,
        "waves": [(100, NOW + timedelta(days=1))],
        "max_failure_rate": 0.0,
        "published": NOW - timedelta(hours=2),
    }
    values.update(overrides)
    return release_document(
        bundle=bundle,
        bundle_url=url,
        signature=bundle.with_name(bundle.name + ".sig"),
        **values,
    )


def message(doc: dict[str, Any], key: Path) -> bytes:
    return signed(doc, key)


class _Files(BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        body = self.files.get(self.path)
        self.hits.append(self.path)
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def https_files(directory: Path, files: dict[str, bytes]) -> Iterator[tuple[str, Path, list[str]]]:
    """Serve ``files`` (path → body) over HTTPS on 127.0.0.1; yields (base URL, CA file, the
    paths asked for)."""
    pki = make_pki(directory / "pki")
    handler = type("Files", (_Files,), {"files": files, "hits": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki / "server.pem", pki / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", pki / "ca.pem", handler.hits
    finally:
        server.shutdown()
        server.server_close()
