"""The run-time cluster certificate for hybrid mode (``cluster_mtls = shared``).

CP and DPs share one self-signed certificate and key (KONG-FACTS 3.2); the DP sends SNI
``kong_clustering``. The pair is made fresh for each run, written with mode 0600, and never committed.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from harness.model import ClusterCert

CLUSTER_CN = "kong_clustering"
CERT_FILE = "cluster.crt"
KEY_FILE = "cluster.key"

KeyType = Literal["ec", "rsa"]


def make_cluster_cert(
    directory: str | os.PathLike[str], *, key_type: KeyType = "ec", days: int = 30
) -> ClusterCert:
    """Create ``cluster.crt`` and ``cluster.key`` in ``directory`` (EC P-256 or RSA 2048), both 0600.

    Existing files of those names are replaced. Returns their paths.
    """
    if key_type not in ("ec", "rsa"):
        raise ValueError(f"key_type must be 'ec' or 'rsa', got {key_type!r}")
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if key_type == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CLUSTER_CN)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(CLUSTER_CN)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = folder / CERT_FILE
    key_path = folder / KEY_FILE
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    _write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    return ClusterCert(cert_path=str(cert_path), key_path=str(key_path))


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600 from the first byte (no window where others can read)."""
    if path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)  # the umask cannot widen it, but a stricter one could narrow it: pin it
