"""The run-time hybrid certificate."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import NameOID

from harness.certs import make_cluster_cert


@pytest.mark.parametrize(
    ("key_type", "key_class"), [("ec", ec.EllipticCurvePrivateKey), ("rsa", rsa.RSAPrivateKey)]
)
def test_cluster_cert_is_self_signed_kong_clustering_and_private(
    tmp_path: Path, key_type: str, key_class: type
) -> None:
    pair = make_cluster_cert(tmp_path / "certs", key_type=key_type)  # type: ignore[arg-type]
    cert = x509.load_pem_x509_certificate(Path(pair.cert_path).read_bytes())
    key = load_pem_private_key(Path(pair.key_path).read_bytes(), password=None)

    assert isinstance(key, key_class)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "kong_clustering"
    assert cert.issuer == cert.subject
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["kong_clustering"]
    if key_type == "rsa":
        assert key.key_size == 2048  # type: ignore[union-attr]
    else:
        assert key.curve.name == "secp256r1"  # type: ignore[union-attr]
    for path in (pair.cert_path, pair.key_path):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path


def test_cluster_cert_replaces_an_old_pair(tmp_path: Path) -> None:
    first = make_cluster_cert(tmp_path)
    old_key = Path(first.key_path).read_bytes()
    os.chmod(first.key_path, 0o644)
    second = make_cluster_cert(tmp_path)
    assert second == first  # same paths
    assert Path(second.key_path).read_bytes() != old_key
    assert stat.S_IMODE(os.stat(second.key_path).st_mode) == 0o600


def test_cluster_cert_refuses_an_unknown_key_type(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="key_type must be 'ec' or 'rsa', got 'dsa'"):
        make_cluster_cert(tmp_path, key_type="dsa")  # type: ignore[arg-type]
