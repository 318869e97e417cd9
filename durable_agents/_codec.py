"""Encrypted payloads: AES-256-GCM on everything the client and workers send to Temporal.

Keys come from the environment or a file, never from history:
- `DURABLE_AGENTS_CODEC_KEYS="k2=<base64 32 bytes>,k1=<base64 32 bytes>"`, or
- `DURABLE_AGENTS_CODEC_KEYS_FILE=/path` with one `id=<base64>` per line (`#` comments).
The first key encrypts; every listed key decrypts, so rotation is: put the new key first, keep the
old ones until no history needs them. Each payload's metadata names its key id
(`encryption-key-id`); the key id is also bound to the ciphertext as associated data. Make a key
with `python -c "import os, base64; print(base64.b64encode(os.urandom(32)).decode())"`.

Without keys the codec is off and payloads are plain JSON, as Temporal stores them by default.
On a client with a data converter of its own, `composed` keeps the client's codec and payload
converter and adds only what it lacks (workers/plugin.py).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticPayloadConverter, pydantic_data_converter
from temporalio.converter import DataConverter, DefaultPayloadConverter, PayloadCodec

from durable_agents.errors import CodecConfigError

if TYPE_CHECKING:
    from durable_agents.settings import Settings

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE = 12
KEYS_ENV = "DURABLE_AGENTS_CODEC_KEYS"
KEYS_FILE_ENV = "DURABLE_AGENTS_CODEC_KEYS_FILE"


class CodecConflict(CodecConfigError):
    """The client's data converter has a payload codec of its own and encryption keys are
    configured too: a payload is encoded by one codec, so one of them has to go."""


class Keyring:
    """Named AES-256 keys; the first one encrypts."""

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise CodecConfigError("a keyring needs at least one key")
        for kid, key in keys:
            if len(key) != 32:
                raise CodecConfigError(
                    f"key {kid!r} is {len(key)} bytes; AES-256 needs 32 (base64 of 32 random bytes)"
                )
        # cryptography (about 7 MB resident) is loaded only where keys are configured.
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.current = keys[0][0]
        self._keys = {kid: AESGCM(key) for kid, key in keys}

    @property
    def ids(self) -> list[str]:
        return list(self._keys)

    def encrypt(self, plain: bytes, kid: str | None = None) -> tuple[str, bytes]:
        kid = kid or self.current
        nonce = os.urandom(NONCE)
        return kid, nonce + self._keys[kid].encrypt(nonce, plain, kid.encode())

    def decrypt(self, kid: str, sealed: bytes) -> bytes:
        aead = self._keys.get(kid)
        if aead is None:
            raise CodecConfigError(
                f"payload encrypted with key {kid!r}, which is not configured (have: "
                f"{', '.join(self._keys)}); add it to DURABLE_AGENTS_CODEC_KEYS to read old data"
            )
        from cryptography.exceptions import InvalidTag

        try:
            return aead.decrypt(sealed[:NONCE], sealed[NONCE:], kid.encode())
        except InvalidTag:
            raise CodecConfigError(
                f"payload under key {kid!r} does not decrypt: wrong key material, or tampered"
            ) from None


def parse_keys(text: str, source: str) -> Keyring:
    keys = []
    for raw in text.replace(",", "\n").splitlines():
        item = raw.split("#", 1)[0].strip()
        if not item:
            continue
        kid, sep, material = item.partition("=")
        if not sep or not kid.strip():
            raise CodecConfigError(f"{source}: expected id=<base64 key>, got {item[:20]!r}…")
        try:
            key = base64.b64decode(material.strip(), validate=True)
        except binascii.Error:
            raise CodecConfigError(f"{source}: key {kid.strip()!r} is not base64") from None
        keys.append((kid.strip(), key))
    if not keys:
        raise CodecConfigError(f"{source} names no keys")
    return Keyring(keys)


def configured_keyring(settings: Settings | None = None) -> Keyring | None:
    """The keys the settings name (DURABLE_AGENTS_CODEC_KEYS, or the file of
    DURABLE_AGENTS_CODEC_KEYS_FILE); None: encryption is off."""
    from durable_agents.settings import current

    settings = settings or current()
    text = settings.codec_keys.get_secret_value() if settings.codec_keys else None
    return _keyring(text, settings.codec_keys_file)


@lru_cache(maxsize=8)
def _keyring(text: str | None, path: Path | None) -> Keyring | None:
    if text:
        return parse_keys(text, KEYS_ENV)
    if path is not None:
        try:
            text = path.read_text()
        except OSError as exc:
            raise CodecConfigError(
                f"DURABLE_AGENTS_CODEC_KEYS_FILE: cannot read {path}: {exc}"
            ) from None
        return parse_keys(text, str(path))
    return None


class EncryptionCodec(PayloadCodec):
    """AES-GCM over each whole payload (its metadata too); plain payloads pass through."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            kid, sealed = self.keyring.encrypt(p.SerializeToString())
            out.append(Payload(metadata={"encoding": ENCODING, KEY_ID: kid.encode()}, data=sealed))
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            if p.metadata.get("encoding") != ENCODING:
                out.append(p)
                continue
            kid = p.metadata.get(KEY_ID, b"").decode()
            out.append(Payload.FromString(self.keyring.decrypt(kid, p.data)))
        return out


def data_converter(
    keyring: Keyring | None = None, settings: Settings | None = None
) -> DataConverter:
    """The project's converter: pydantic JSON, encrypted when keys are configured."""
    keyring = keyring or configured_keyring(settings)
    if keyring is None:
        return pydantic_data_converter
    return dataclasses.replace(pydantic_data_converter, payload_codec=EncryptionCodec(keyring))


def composed(existing: DataConverter | None, settings: Settings | None = None) -> DataConverter:
    """The project's converter laid over a client's own (what `DurableAgentsPlugin` sets):

    - the payload converter: pydantic JSON where the client has the SDK's default; a payload
      converter of the client's own stays (it must read and write pydantic models);
    - the payload codec: the client's own stays (e.g. its encryption); encryption with the keys
      of DURABLE_AGENTS_CODEC_KEYS only where the client has none. Both at once are refused
      (`CodecConflict`): a payload is encoded once, and neither may silently lose;
    - everything else (failure converter, external storage) stays the client's.
    """
    if existing is None:
        return data_converter(settings=settings)
    keyring = configured_keyring(settings)
    changes: dict[str, Any] = {}
    if existing.payload_converter_class is DefaultPayloadConverter:
        changes["payload_converter_class"] = PydanticPayloadConverter
    codec = existing.payload_codec
    if keyring is not None and codec is None:
        changes["payload_codec"] = EncryptionCodec(keyring)
    elif keyring is not None and not isinstance(codec, EncryptionCodec):
        from durable_agents.settings import current

        keys = KEYS_FILE_ENV if (settings or current()).codec_keys is None else KEYS_ENV
        raise CodecConflict(
            f"the client's data converter has its own payload codec ({type(codec).__name__}) "
            f"and {keys} is set too, but a payload is encoded by one codec only: unset {keys} "
            "to keep your codec, or take your codec out of the client's data converter to have "
            "payloads encrypted with those keys"
        )
    return dataclasses.replace(existing, **changes) if changes else existing
