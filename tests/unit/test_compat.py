"""harness.compat: versions, the hybrid rule table, breaking-change rules per upgrade path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.compat import RULES, Version, check_upgrade, explain, hybrid_compatible
from harness.config_capture import render_declarative
from harness.errors import HarnessError

CONFIGS = Path(__file__).resolve().parents[2] / "plans" / "configs"


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load(render_declarative((CONFIGS / name).read_text(), "http://127.0.0.1:9999"))


def ids(findings: list[Any]) -> set[str]:
    return {f.id for f in findings}


@pytest.mark.parametrize(
    ("text", "parts", "enterprise"),
    [
        ("2.8.5", (2, 8, 5, 0), False),
        ("3.8.1", (3, 8, 1, 0), False),
        ("3.4.3.12", (3, 4, 3, 12), True),
        ("3.9.3-enterprise-edition", (3, 9, 3, 0), True),
        ("3.4", (3, 4, 0, 0), False),
    ],
)
def test_version_parse(text: str, parts: tuple[int, int, int, int], enterprise: bool) -> None:
    v = Version.parse(text)
    assert (v.major, v.minor, v.patch, v.build) == parts and v.enterprise is enterprise
    assert str(Version.parse(str(v))) == str(v)


def test_version_ordering_and_errors() -> None:
    order = ["2.8.5", "3.0.0", "3.4.2", "3.4.3.12", "3.10.0"]
    assert sorted(order[::-1], key=Version.parse) == order
    assert Version.parse("3.9.3-enterprise-edition") == Version.parse("3.9.3")
    for bad in ("three", "3", "3.x.1", "", None):
        with pytest.raises(HarnessError, match="not a Kong version"):
            Version.parse(bad)


@pytest.mark.parametrize(
    ("cp", "dp", "ok", "status", "message"),
    [
        ("3.8.1", "3.8.1", True, "normal", "matches"),
        ("3.8.1", "3.8.0", True, "normal", "matches"),              # patch ignored
        ("3.8.0", "3.8.3", True, "normal", "matches"),              # newer DP patch accepted
        ("3.8.1", "3.4.2", True, "normal", "older"),
        ("3.9.3", "3.9.3-enterprise-version", True, "normal", "matches"),
        ("3.4.2", "3.8.1", False, "kong_version_incompatible",
         "data plane version 3.8.1 is incompatible with older control plane version 3.4.2"),
        ("3.4.2", "2.8.5", False, "kong_version_incompatible",
         "data plane version 2.8.5 is incompatible with control plane version 3.4.2 (3.x.y are accepted)"),
        ("2.8.5", "3.0.0", False, "kong_version_incompatible", "(2.x.y are accepted)"),
        ("3.2.0", "3.1.1", False, None, "different sync transports"),   # OSS 3.1 wRPC only
        ("3.1.1", "3.0.0", True, "normal", "older"),
        ("3.2.0", "3.1.1.3", True, "normal", "older"),                  # enterprise 3.1.1.3 speaks both
        ("3.2.0", "3.1.1.1", False, None, "different sync transports"),
    ],
)
def test_hybrid_rule_table(cp: str, dp: str, ok: bool, status: str | None, message: str) -> None:
    got_ok, got_status, got_message = hybrid_compatible(cp, dp)
    assert (got_ok, got_status) == (ok, status)
    assert message in got_message


def test_rules_are_well_formed() -> None:
    seen = set()
    for rule in RULES:
        assert rule.id not in seen
        seen.add(rule.id)
        Version.parse(rule.introduced_in)
        assert rule.severity in ("error", "warning", "info") and rule.breaks and rule.action


def test_28_to_34_on_the_2x_sample() -> None:
    findings = check_upgrade("2.8.5", "3.4.2", load("sample-2x.yaml"))
    found = ids(findings)
    assert {"regex-path-without-tilde", "format-version-3", "plugin-priority-3.0",
            "x-credential-username-removed", "status-database-field-removed"} <= found
    regex = [f for f in findings if f.id == "regex-path-without-tilde"]
    assert {f.entity for f in regex} == {"routes['orders-by-id']", "routes['health-check']"}
    assert all(f.severity == "warning" for f in regex)     # a "2.1" file is converted on load by 3.x
    assert not found & {"via-header-format", "auth-401-message-unauthorized", "pcre2"}   # 3.6+ / 3.7+ / 3.8


def test_regex_without_tilde_in_a_30_file_is_an_error() -> None:
    config = {"_format_version": "3.0",
              "routes": [{"name": "r", "paths": ["/users/\\d+", "/plain"]}]}
    (finding,) = [f for f in check_upgrade("2.8.5", "3.0.0", config) if f.id == "regex-path-without-tilde"]
    assert finding.severity == "error" and "'/users/\\\\d+'" in finding.breaks


def test_rust_regex_and_removed_fields_on_28_to_34() -> None:
    config = {"_format_version": "2.1", "services": [{"name": "s", "host": "h", "routes": [
        {"name": "look", "paths": ["/(?!admin)"]}, {"name": "slash", "paths": ["~/a\\/b"]}],
        "plugins": [{"name": "pre-function", "config": {"functions": ["return"]}},
                    {"name": "aws-lambda", "config": {"proxy_scheme": "https"}},
                    {"name": "rate-limiting", "config": {"minute": 5}}]}]}
    findings = check_upgrade("2.8.5", "3.4.2", config, {"client_max_body_size": "0", "router_flavor": "x"})
    by_id = {f.id: f for f in findings}
    assert {"router-rust-regex", "serverless-functions-removed", "aws-lambda-proxy-scheme-removed",
            "rate-limiting-policy-default", "kong-conf-removed-keys"} <= set(by_id)
    functions = by_id["serverless-functions-removed"]
    assert functions.entity == "plugins['pre-function@service:s'].config.functions"
    assert findings[0].severity == "error"                # errors first
    traditional = check_upgrade("2.8.5", "3.4.2", config, {"router_flavor": "traditional"})
    assert "router-rust-regex" not in ids(traditional)


def test_34_to_38_on_the_sample() -> None:
    found = ids(check_upgrade("3.4.2", "3.8.1", load("sample.yaml")))
    assert {"request-id-in-error-bodies", "x-kong-request-id-header", "status-listen-default",
            "auth-401-message-unauthorized", "key-auth-www-authenticate", "pcre2",
            "via-header-format"} <= found
    assert not found & {"regex-path-without-tilde", "format-version-3", "status-database-field-removed"}
    assert "lmdb-wipe-on-minor-change" not in found                    # DB-less: no DPs
    assert "status-listen-default" not in ids(check_upgrade("3.4.2", "3.8.1", load("sample.yaml"),
                                                             {"status_listen": "127.0.0.1:8100"}))


def test_35_to_36_boundary() -> None:
    config = load("sample.yaml")
    found = ids(check_upgrade("3.5.0", "3.6.1", config, mode="hybrid"))
    assert {"auth-401-message-unauthorized", "status-listen-default", "lmdb-wipe-on-minor-change"} <= found
    assert not found & {"request-id-in-error-bodies", "key-auth-www-authenticate", "via-header-format"}
    assert "lmdb-wipe-on-minor-change" not in ids(check_upgrade("3.5.0", "3.6.1", config, mode="dbless"))


def test_36_to_39_boundary() -> None:
    config = load("sample.yaml")
    found = ids(check_upgrade("3.6.1", "3.9.0", config, {"node_id": "x"}, mode="hybrid"))
    assert {"key-auth-www-authenticate", "pcre2", "via-header-format", "node-id-deprecated",
            "lmdb-wipe-on-minor-change"} <= found
    assert not found & {"auth-401-message-unauthorized", "status-listen-default", "format-version-3"}
    # a patch upgrade crosses nothing
    assert check_upgrade("3.9.0", "3.9.3", config, mode="hybrid") == []


def test_hybrid_major_change_is_flagged() -> None:
    found = ids(check_upgrade("2.8.5", "3.4.2", {}, mode="hybrid"))
    assert "hybrid-major-mismatch" in found
    assert "hybrid-major-mismatch" not in ids(check_upgrade("2.8.5", "3.4.2", {}, mode="dbless"))


def test_weak_rsa_certificate_is_found() -> None:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak.test")])
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    (finding,) = [f for f in check_upgrade("3.5.0", "3.6.0", {"certificates": [{"id": "c1", "cert": pem}]})
                  if f.id == "openssl-security-level-2"]
    assert "1024 bits" in finding.breaks


def test_explain_renders_every_part() -> None:
    (finding,) = [f for f in check_upgrade("3.7.0", "3.8.0", {}) if f.id == "via-header-format"]
    text = explain(finding)
    assert "via-header-format" in text and "3.8.0" in text and finding.action in text
    assert finding.to_dict()["introduced_in"] == "3.8.0"


def test_check_hybrid_versions_names_the_refusal() -> None:
    from harness.compat import HYBRID_DP_VERSION, RULE_IDS, check_hybrid_versions

    assert check_hybrid_versions("3.8.1", "3.7.0") is None
    finding = check_hybrid_versions("3.8.1", "3.9.1")
    assert finding is not None and finding.id == HYBRID_DP_VERSION in RULE_IDS
    assert finding.severity == "error"
    assert "kong_version_incompatible" in finding.breaks
