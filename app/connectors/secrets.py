"""Connector secrets: encrypted at rest (Fernet, key derived from SECRET_KEY), masked on read.

A sealed secret is stored in place as `{"$secret": "<token>"}`, so masking and unsealing walk
the config without knowing which connector type it belongs to.
"""

from __future__ import annotations

import base64
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MASK = "********"
SEALED = "$secret"


class SecretBox:
    def __init__(self, secret_key: str):
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"data-aggregator", info=b"connector-secrets"
        ).derive(secret_key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(
        self,
        config: dict[str, Any],
        secret_pointers: list[str],
        previous: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Encrypt the secrets in `config`. A masked value means "unchanged": the previous
        sealed value is kept."""
        sealed = _copy(config)
        for pointer in secret_pointers:
            value = get_pointer(sealed, pointer)
            if value == MASK:
                kept = get_pointer(previous or {}, pointer)
                set_pointer(sealed, pointer, kept if _is_sealed(kept) else None)
            elif isinstance(value, str):
                set_pointer(
                    sealed, pointer, {SEALED: self._fernet.encrypt(value.encode()).decode()}
                )
        return sealed

    def unseal(self, config: dict[str, Any]) -> dict[str, Any]:
        """The plain config, for connectors only; never send it to a client."""
        return _walk(config, self._decrypt)

    def _decrypt(self, sealed: dict[str, str]) -> str | None:
        try:
            return self._fernet.decrypt(sealed[SEALED].encode()).decode()
        except (InvalidToken, ValueError):
            return None  # SECRET_KEY changed: the secret must be entered again


def mask(config: dict[str, Any]) -> dict[str, Any]:
    return _walk(config, lambda _sealed: MASK)


def masked_view(row: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """A row (model or dict from `.values()`) as clients see it: `config` with secrets masked."""
    field = row.get if isinstance(row, dict) else row.__getattribute__
    view = {name: field(name) for name in fields}
    view["config"] = mask(view["config"])
    return view


def restore_masked(
    config: dict[str, Any], secret_pointers: list[str], previous_plain: dict[str, Any]
) -> dict[str, Any]:
    """Replace masked values with the previous plain values (so validation sees real ones)."""
    restored = _copy(config)
    for pointer in secret_pointers:
        if get_pointer(restored, pointer) == MASK:
            set_pointer(restored, pointer, get_pointer(previous_plain, pointer))
    return restored


def _is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {SEALED}


def _walk(value: Any, on_sealed) -> Any:
    if _is_sealed(value):
        return on_sealed(value)
    if isinstance(value, dict):
        return {k: _walk(v, on_sealed) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, on_sealed) for v in value]
    return value


def _copy(value: Any) -> Any:
    return _walk(value, lambda sealed: dict(sealed))


def _parts(pointer: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer.lstrip("/").split("/") if p]


def get_pointer(doc: Any, pointer: str) -> Any:
    for part in _parts(pointer):
        if isinstance(doc, dict):
            doc = doc.get(part)
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            return None
    return doc


def set_pointer(doc: dict[str, Any], pointer: str, value: Any) -> None:
    parts = _parts(pointer)
    for part in parts[:-1]:
        child = doc.get(part) if isinstance(doc, dict) else None
        if not isinstance(child, dict):
            return  # the branch does not exist in this config (another oneOf choice)
        doc = child
    if parts and isinstance(doc, dict) and parts[-1] in doc:
        if value is None:
            del doc[parts[-1]]
        else:
            doc[parts[-1]] = value
