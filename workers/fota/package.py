"""Writing and reading update packages (format: docs/update-package.md), streaming: at most one
chunk of plaintext or ciphertext is in memory, whatever the package's size.

Reading is two passes. `verify` checks the header, the kind, the version (anti-replay), the
signer's certificate chain and the signature over every byte, decrypting nothing. Only then
`extract` decrypts chunk by chunk into a temporary folder beside the destination, checks each
GCM tag and the plaintext's SHA-256, checks that the file still has the bytes that were
verified, and renames the folder into place: a refused package leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bus.enums import UpdateKind
from workers.fota import header as fmt
from workers.fota import signer
from workers.fota.errors import PackageRefused, PackError, RefusalReason
from workers.fota.header import PackageHeader, PayloadFile
from workers.fota.keys import UpdateKey
from workers.fota.versions import PackageVersion


@dataclass(frozen=True)
class VerifiedPackage:
    """A package whose signature, signer and version were checked; `extract` may decrypt it."""

    path: Path
    header: PackageHeader
    header_bytes: bytes
    signed_digest: bytes


# ---- writing ----

def pack(source: Path, output: Path, *, kind: UpdateKind, version: PackageVersion, key: UpdateKey,
         signing_key: ec.EllipticCurvePrivateKey, certificates: list[x509.Certificate],
         chunk_size: int = fmt.DEFAULT_CHUNK_BYTES, now: datetime | None = None) -> PackageHeader:
    """Encrypt and sign `source` (a file, or a folder's files) into `output`, written atomically."""
    if _spki(certificates[0].public_key()) != _spki(signing_key.public_key()):
        raise PackError("the certificate is not for the signing key")
    inputs = _payload_inputs(source)
    files = tuple(PayloadFile(name=name, size=path.stat().st_size) for name, path in inputs)
    header = PackageHeader(
        kind=kind, version=str(version), created_at=now or datetime.now(UTC), files=files,
        plaintext_sha256=_sha256_hex(path for _, path in inputs), chunk_size=chunk_size,
        nonce_prefix=secrets.token_bytes(fmt.NONCE_PREFIX_BYTES).hex(), key_id=key.key_id,
        signer_certificates=tuple(c.public_bytes(Encoding.PEM).decode() for c in certificates))
    output.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            _write_package(stream, header, [path for _, path in inputs], key, signing_key)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, output)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return header


def _write_package(stream: BinaryIO, header: PackageHeader, paths: list[Path], key: UpdateKey,
                   signing_key: ec.EllipticCurvePrivateKey) -> None:
    raw_header = fmt.encode_header(header)
    digest = fmt.header_digest(raw_header)
    signed, plaintext = hashlib.sha256(raw_header), hashlib.sha256()
    stream.write(raw_header)
    cipher = AESGCM(key.secret)
    with _ConcatenatedReader(paths) as reader:
        for index in range(header.chunk_count):
            size = header.chunk_plain_size(index)
            chunk = reader.read(size)
            if len(chunk) != size:
                raise PackError("an input file changed while it was packed")
            plaintext.update(chunk)
            aad = fmt.chunk_aad(digest, index, final=index == header.chunk_count - 1)
            sealed = cipher.encrypt(fmt.chunk_nonce(header, index), chunk, aad)
            signed.update(sealed)
            stream.write(sealed)
        if reader.read(1) or plaintext.hexdigest() != header.plaintext_sha256:
            raise PackError("an input file changed while it was packed")
    stream.write(signer.sign_digest(signing_key, signed.digest()))


def _payload_inputs(source: Path) -> list[tuple[str, Path]]:
    if source.is_file():
        return [(source.name, source)]
    if not source.is_dir():
        raise PackError(f"{source}: no such file or folder")
    return [(path.relative_to(source).as_posix(), path)
            for path in sorted(source.rglob("*")) if path.is_file()]


def _sha256_hex(paths: Iterator[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as file:
            while block := file.read(fmt.DEFAULT_CHUNK_BYTES):
                digest.update(block)
    return digest.hexdigest()


def _spki(key: object) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined]


class _ConcatenatedReader:
    """The payload files read as one stream."""

    def __init__(self, paths: list[Path]) -> None:
        self._pending = list(paths)
        self._current: BinaryIO | None = None

    def __enter__(self) -> _ConcatenatedReader:
        return self

    def __exit__(self, *_: object) -> None:
        if self._current is not None:
            self._current.close()

    def read(self, size: int) -> bytes:
        parts: list[bytes] = []
        while size > 0:
            if self._current is None:
                if not self._pending:
                    break
                self._current = self._pending.pop(0).open("rb")
            block = self._current.read(size)
            if not block:
                self._current.close()
                self._current = None
                continue
            parts.append(block)
            size -= len(block)
        return b"".join(parts)


# ---- reading ----

def inspect(path: Path) -> PackageHeader:
    """The header as the file states it: nothing is verified (no key needed)."""
    with path.open("rb") as stream:
        return fmt.read_header(stream)[0]


def verify(path: Path, *, keys: Mapping[str, UpdateKey], roots: list[x509.Certificate],
           expected_kind: UpdateKind | None = None, installed_version: PackageVersion | None = None,
           now: datetime | None = None) -> VerifiedPackage:
    """Every check that needs no decryption, cheapest first; PackageRefused at the first failure."""
    with path.open("rb") as stream:
        header, raw_header = fmt.read_header(stream)
        if expected_kind is not None and header.kind != expected_kind:
            raise PackageRefused(RefusalReason.WRONG_KIND,
                                 f"a {header.kind.value} package, not {expected_kind.value}")
        if installed_version is not None and header.package_version <= installed_version:
            raise PackageRefused(RefusalReason.NOT_NEWER,
                                 f"version {header.version} is not newer than the installed "
                                 f"{installed_version}")
        _key_for(header, keys)
        chain = signer.parse_chain(header.signer_certificates)
        signer.check_signer_chain(chain, roots, now or datetime.now(UTC))
        signed = hashlib.sha256(raw_header)
        for _index, sealed in _sealed_chunks(stream, header):
            signed.update(sealed)
        signer.verify_digest(chain[0], signed.digest(), signer.read_signature(stream))
    return VerifiedPackage(path, header, raw_header, signed.digest())


def extract(package: VerifiedPackage, keys: Mapping[str, UpdateKey], destination: Path) -> list[Path]:
    """Decrypt a verified package into `destination` (absent or empty); the files written."""
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise FileExistsError(f"{destination} exists and is not an empty folder")
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=destination.parent, prefix=f".{destination.name}.partial-"))
    try:
        _decrypt_into(package, _key_for(package.header, keys), staging)
        if destination.exists():
            destination.rmdir()
        staging.rename(destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [destination / item.name for item in package.header.files]


def _decrypt_into(package: VerifiedPackage, key: UpdateKey, folder: Path) -> None:
    header = package.header
    digest = fmt.header_digest(package.header_bytes)
    cipher, plaintext = AESGCM(key.secret), hashlib.sha256()
    with package.path.open("rb") as stream, _SplitWriter(folder, header.files) as writer:
        if stream.read(len(package.header_bytes)) != package.header_bytes:
            raise PackageRefused(RefusalReason.CHANGED, "the header changed after verification")
        signed = hashlib.sha256(package.header_bytes)
        for index, sealed in _sealed_chunks(stream, header):
            signed.update(sealed)
            aad = fmt.chunk_aad(digest, index, final=index == header.chunk_count - 1)
            try:
                chunk = cipher.decrypt(fmt.chunk_nonce(header, index), sealed, aad)
            except InvalidTag:
                raise PackageRefused(RefusalReason.DECRYPTION_FAILED,
                                     f"chunk {index}: the AES-GCM tag does not verify") from None
            plaintext.update(chunk)
            writer.write(chunk)
        signer.read_signature(stream)
    if signed.digest() != package.signed_digest:
        raise PackageRefused(RefusalReason.CHANGED, "the file changed after verification")
    if plaintext.hexdigest() != header.plaintext_sha256:
        raise PackageRefused(RefusalReason.CHECKSUM_MISMATCH, "the plaintext's SHA-256 is not the header's")


def _sealed_chunks(stream: BinaryIO, header: PackageHeader) -> Iterator[tuple[int, bytes]]:
    for index in range(header.chunk_count):
        size = header.chunk_plain_size(index) + fmt.TAG_BYTES
        sealed = stream.read(size)
        if len(sealed) < size:
            raise PackageRefused(RefusalReason.TRUNCATED,
                                 f"the file ends inside chunk {index} of {header.chunk_count}")
        yield index, sealed


def _key_for(header: PackageHeader, keys: Mapping[str, UpdateKey]) -> UpdateKey:
    key = keys.get(header.key_id)
    if key is None:
        raise PackageRefused(RefusalReason.UNKNOWN_KEY,
                             f"encrypted for update key {header.key_id}, which this station does not hold")
    return key


class _SplitWriter:
    """Plaintext written across the payload's files, each fsynced when complete."""

    def __init__(self, folder: Path, files: tuple[PayloadFile, ...]) -> None:
        self._folder = folder
        self._pending = list(files)
        self._current: BinaryIO | None = None
        self._left = 0
        self._open_next_files()

    def __enter__(self) -> _SplitWriter:
        return self

    def __exit__(self, *_: object) -> None:
        if self._current is not None:
            self._current.close()

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and self._current is not None:  # the chunks' sizes add up to the files' sizes
            part = view[:self._left]
            self._current.write(part)
            self._left -= len(part)
            view = view[len(part):]
            self._open_next_files()

    def _open_next_files(self) -> None:
        """Close a complete file; create the next ones (an empty file is complete at once)."""
        while self._left == 0:
            if self._current is not None:
                self._current.flush()
                os.fsync(self._current.fileno())
                self._current.close()
                self._current = None
            if not self._pending:
                return
            item = self._pending.pop(0)
            target = self._folder / item.name
            target.parent.mkdir(parents=True, exist_ok=True)
            self._current, self._left = target.open("xb"), item.size
