"""Secrets in Kong configurations: :func:`redact` and :func:`fingerprint`.

A secret is the string value (or each string of a list) under a dict key that :data:`SECRET_KEYS` names
or that contains one of :data:`SECRET_KEY_PARTS` (both in :mod:`harness.config_rules`); it is replaced by
``<redacted:sha256-8>``, the first 8 hex characters of its sha256, so two captures still compare equal
when they hold the same secret. The normal form (:mod:`harness.config`) redacts while it copies, with
:func:`redact_owned` and :func:`redact_secret`; :class:`harness.report.redact.SecretStore` cleans
everything else the harness writes.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from typing import Any

from harness.config_rules import SECRET_KEY_PARTS, SECRET_KEYS

#: values with nothing inside them (checked before Mapping: an ABC isinstance check is slow)
LEAVES: tuple[type, ...] = (str, int, float, type(None))
#: the exact types of :data:`LEAVES` values (and bool), for a set lookup instead of isinstance
EXACT_LEAVES: frozenset[type] = frozenset({str, int, float, bool, type(None)})


def fingerprint(value: str) -> str:
    """First 8 hex characters of the value's sha256: identifies a secret without revealing it."""
    return hashlib.sha256(value.encode()).hexdigest()[:8]


def redacted(value: str) -> str:
    return f"<redacted:{fingerprint(value)}>"


#: dict keys found not to be secret (bounded like the cache below): ``k not in PLAIN_KEYS`` is much
#: cheaper than a call, and almost every key a config has is plain
PLAIN_KEYS: set[str] = set()


@functools.lru_cache(maxsize=4096)
def is_secret_key(name: str) -> bool:
    lower = name.lower()
    secret = lower in SECRET_KEYS or any(part in lower for part in SECRET_KEY_PARTS)
    if not secret and len(PLAIN_KEYS) < 4096:
        PLAIN_KEYS.add(name)
    return secret


def redact(obj: Any) -> Any:
    """A copy of ``obj`` with every secret string value replaced by ``<redacted:sha256-8>``.

    Secret values are the string values (or lists of strings) under keys such as key, password,
    secret, token, client_secret; numbers and booleans stay (``token_expiration: 7200`` is not secret).
    """
    if isinstance(obj, LEAVES):      # most values: skip the (slow) abstract-class checks below
        return obj
    if isinstance(obj, list | tuple):
        return [redact(i) for i in obj]
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            if k not in PLAIN_KEYS and is_secret_key(str(k)):
                out[k] = redact_secret(v)
            else:                    # an exact-type test first: a call per leaf value costs more
                out[k] = v if type(v) in EXACT_LEAVES else redact(v)
        return out
    return obj


def redact_secret(value: Any) -> Any:
    """``value`` found under a secret key, redacted: a string, each string of a list, else recursively."""
    if isinstance(value, str):
        return value if value.startswith("<redacted:") else redacted(value)
    if isinstance(value, list) and all(isinstance(i, str) for i in value):
        return [i if i.startswith("<redacted:") else redacted(i) for i in value]
    return redact(value)


def redact_owned(obj: dict[str, Any] | list[Any]) -> None:
    """:func:`redact` in place, for a container normalisation built itself (its dicts and lists are
    its own, so they need not be copied again); other containers inside are replaced by redact's copy."""
    if isinstance(obj, list):
        for i, v in enumerate(obj):
            if type(v) is dict or type(v) is list:
                redact_owned(v)
            elif type(v) not in EXACT_LEAVES:
                obj[i] = redact(v)
        return
    for k, v in obj.items():         # values are replaced, never added or removed: safe while iterating
        if k not in PLAIN_KEYS and is_secret_key(str(k)):
            obj[k] = redact_secret(v)
            continue
        t = type(v)
        if t in EXACT_LEAVES:        # most values
            continue
        if t is dict or t is list:
            redact_owned(v)
        else:
            obj[k] = redact(v)
