"""Secrets at rest: AES-GCM with named keys, so that keys can be rotated without rewriting old rows.

`SECRETS_KEY` lists keys newest first, comma-separated, each `ID:BASE64URL` (32 raw bytes); a bare
base64url key gets the id `sha256(key)[:8]` in hex. New ciphertexts use the newest key; older keys only
open what they sealed before. Callers pass the row's identity as associated data, so a ciphertext copied
onto another row does not open.

No message or repr here ever contains key bytes, a plaintext or a ciphertext.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
import stat
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
_TAG_BYTES = 16
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")

Keys = list[tuple[str, bytes]]


class CipherError(Exception):
    """A key is missing, malformed or wrong, or a ciphertext does not open. Never names key material."""


class SecretCipher:
    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise CipherError("no secrets key given")
        self._keys: dict[str, AESGCM] = {}
        for key_id, key in keys:
            if not _KEY_ID.fullmatch(key_id):
                raise CipherError("a key id must be 1-64 characters of letters, digits, '_', '.' or '-'")
            if len(key) != KEY_BYTES:
                raise CipherError(f"key {key_id} must be {KEY_BYTES} bytes, not {len(key)}")
            if key_id in self._keys:
                raise CipherError(f"key id {key_id} is listed twice")
            self._keys[key_id] = AESGCM(bytes(key))
        self.newest_key_id = keys[0][0]

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def seal(self, plaintext: bytes, aad: bytes) -> tuple[str, bytes]:
        """(key id, nonce + ciphertext) under the newest key."""
        nonce = os.urandom(NONCE_BYTES)
        return self.newest_key_id, nonce + self._keys[self.newest_key_id].encrypt(nonce, plaintext, aad)

    def open(self, key_id: str, blob: bytes, aad: bytes) -> bytes:
        aead = self._keys.get(key_id)
        if aead is None:
            raise CipherError(
                f"stored secrets are sealed with key {key_id!r}, which is not among the configured keys "
                f"({', '.join(self._keys)}); put it back in SECRETS_KEY, after the newest key"
            )
        if len(blob) < NONCE_BYTES + _TAG_BYTES:
            raise CipherError(f"a stored secret sealed with key {key_id!r} is truncated")
        try:
            return aead.decrypt(bytes(blob[:NONCE_BYTES]), bytes(blob[NONCE_BYTES:]), aad)
        except InvalidTag:
            raise CipherError(
                f"a stored secret does not open with key {key_id!r}: wrong key bytes, or the row was altered"
            ) from None

    def __repr__(self) -> str:
        return f"SecretCipher(key_ids={list(self._keys)!r})"

    __str__ = __repr__


def _key_id_of(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def _encode(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode("ascii")


def _decode(text: str, where: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]+={0,2}", text):
        raise CipherError(f"{where}: the key is not base64url")
    try:
        key = base64.urlsafe_b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4))
    except (binascii.Error, ValueError):
        raise CipherError(f"{where}: the key is not base64url") from None
    if len(key) != KEY_BYTES:
        raise CipherError(f"{where}: the key must decode to {KEY_BYTES} bytes, not {len(key)}")
    return key


def parse_keys(text: str, *, source: str = "SECRETS_KEY") -> Keys:
    """Keys from the SECRETS_KEY format, newest first. Errors name the entry, never its key."""
    entries = [entry.strip() for entry in text.split(",")]
    if not any(entries):
        raise CipherError(f"{source} is empty; it must list keys as ID:BASE64URL (32 bytes each), newest first")
    keys: Keys = []
    for number, entry in enumerate(entries, start=1):
        where = f"{source} entry {number}"
        if not entry:
            raise CipherError(f"{where} is empty")
        if ":" in entry:
            key_id, _, encoded = entry.partition(":")
            key_id, encoded = key_id.strip(), encoded.strip()
            if not _KEY_ID.fullmatch(key_id):
                raise CipherError(f"{where}: the id must be 1-64 characters of letters, digits, '_', '.' or '-'")
            key = _decode(encoded, f"{where} ({key_id})")
        else:
            key = _decode(entry, where)
            key_id = _key_id_of(key)
        if any(key_id == seen for seen, _ in keys):
            raise CipherError(f"{where}: key id {key_id} is listed twice")
        keys.append((key_id, key))
    return keys


def generate_key_text() -> str:
    """A fresh key in the SECRETS_KEY format (`ID:BASE64URL`)."""
    key = secrets.token_bytes(KEY_BYTES)
    return f"{_key_id_of(key)}:{_encode(key)}"


def load_or_create_key_file(path: str | os.PathLike[str]) -> Keys:
    """The embedded default's keys, kept in a file only its owner can read; created once if missing.

    Creation is atomic: the key is written to a private temporary file and hard-linked into place, which
    fails if another process got there first (then its key is read). A file readable by group or others
    is refused.
    """
    path = Path(path)
    try:
        return _read_key_file(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, (generate_key_text() + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temporary, path)  # never replaces an existing file
        except FileExistsError:
            pass  # another process created it first: use theirs
        else:
            _fsync_directory(path.parent)
    finally:
        temporary.unlink(missing_ok=True)
    return _read_key_file(path)


def _read_key_file(path: Path) -> Keys:
    fd = os.open(path, os.O_RDONLY)
    try:
        info = os.fstat(fd)
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CipherError(f"key file {path} is accessible by group or others; run `chmod 600 {path}`")
        chunks = []
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
    finally:
        os.close(fd)
    try:
        text = b"".join(chunks).decode("ascii")
    except UnicodeDecodeError:
        raise CipherError(f"key file {path} does not hold SECRETS_KEY text") from None
    return parse_keys(text.strip(), source=f"key file {path}")


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
