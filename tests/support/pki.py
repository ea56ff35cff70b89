"""A test PKI made with the real openssl: a CA, a server certificate, a client one."""

from __future__ import annotations

import subprocess
from pathlib import Path

EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(directory: Path, client: str = "10000000c1e27001") -> Path:
    """A CA, a server certificate for localhost and 127.0.0.1, and a client certificate for
    the box ``client``."""
    directory.mkdir()
    openssl(
        "req", "-x509", *EC_KEY, "-nodes", "-days", "2",
        "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=fleet test CA", cwd=directory,
    )  # fmt: skip
    (directory / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name, subject in (("server", "/CN=localhost"), ("client", f"/CN={client}")):
        openssl(
            "req", *EC_KEY, "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", subject, cwd=directory,
        )  # fmt: skip
        extra = ["-extfile", "server.ext"] if name == "server" else []
        openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", *extra, cwd=directory,
        )  # fmt: skip
    return directory
