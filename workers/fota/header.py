"""The package header: what a package is (kind, version, files, sizes, digests, chunking) and
its framing on disk. The header is signed with everything else; its SHA-256 goes into every
chunk's AAD, so a chunk cannot be moved to another package. Field bounds keep a hostile file
from making the reader allocate much memory."""

from __future__ import annotations

import hashlib
import struct
from datetime import datetime
from pathlib import PurePosixPath
from typing import BinaryIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bus.enums import UpdateKind
from workers.fota.errors import PackageRefused, RefusalReason
from workers.fota.versions import PackageVersion

MAGIC = b"EVSUPDT\x00"
FORMAT_VERSION = 1
PREAMBLE = struct.Struct(">8sHI")  # magic, format version, header length (bytes)
MAX_HEADER_BYTES = 64 * 1024
NONCE_PREFIX_BYTES = 8  # + 4-byte chunk counter = the 96-bit GCM nonce
TAG_BYTES = 16
MIN_CHUNK_BYTES = 1024
MAX_CHUNK_BYTES = 16 * 1024 * 1024
DEFAULT_CHUNK_BYTES = 64 * 1024
MAX_CHUNKS = 2**32 - 1  # the counter is 32 bits
MAX_FILES = 1000


class PayloadFile(BaseModel):
    """One file of the payload; the payload is the files' bytes one after the other."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=255, description="relative POSIX path, no '..'")
    size: int = Field(ge=0, description="bytes")

    @field_validator("name")
    @classmethod
    def _relative_and_inside(cls, name: str) -> str:
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts or "\\" in name or str(path) != name or name == ".":
            raise ValueError(f"{name!r} is not a plain relative path")
        return name


class PackageHeader(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: UpdateKind
    version: str = Field(description="the package's own version, dotted numbers")
    created_at: datetime = Field(description="UTC, when it was packed")
    files: tuple[PayloadFile, ...] = Field(max_length=MAX_FILES)
    plaintext_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    chunk_size: int = Field(ge=MIN_CHUNK_BYTES, le=MAX_CHUNK_BYTES, description="plaintext bytes per chunk")
    nonce_prefix: str = Field(pattern=rf"^[0-9a-f]{{{NONCE_PREFIX_BYTES * 2}}}$")
    key_id: str = Field(pattern=r"^[0-9a-f]{16}$", description="fingerprint of the update key")
    signer_certificates: tuple[str, ...] = Field(min_length=1, max_length=5,
                                                 description="PEM, signer first, then intermediates")

    @field_validator("version")
    @classmethod
    def _numeric_version(cls, version: str) -> str:
        PackageVersion.parse(version)
        return version

    @property
    def package_version(self) -> PackageVersion:
        return PackageVersion.parse(self.version)

    @property
    def plaintext_size(self) -> int:
        return sum(item.size for item in self.files)

    @property
    def chunk_count(self) -> int:
        """At least one: an empty payload is one empty final chunk, so it is still authenticated."""
        return max(1, -(-self.plaintext_size // self.chunk_size))

    def chunk_plain_size(self, index: int) -> int:
        if index < self.chunk_count - 1:
            return self.chunk_size
        return self.plaintext_size - self.chunk_size * (self.chunk_count - 1)


def encode_header(header: PackageHeader) -> bytes:
    """Preamble + header JSON: the bytes that start a package."""
    body = header.model_dump_json().encode()
    if len(body) > MAX_HEADER_BYTES:
        raise ValueError(f"header of {len(body)} bytes (at most {MAX_HEADER_BYTES})")
    return PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(body)) + body


def read_header(stream: BinaryIO) -> tuple[PackageHeader, bytes]:
    """The header and its raw bytes (preamble included); PackageRefused when it is not one."""
    preamble = stream.read(PREAMBLE.size)
    if len(preamble) < PREAMBLE.size:
        raise PackageRefused(RefusalReason.TRUNCATED, "the file ends inside the preamble")
    magic, format_version, length = PREAMBLE.unpack(preamble)
    if magic != MAGIC:
        raise PackageRefused(RefusalReason.BAD_FORMAT, "not an update package (wrong magic)")
    if format_version != FORMAT_VERSION:
        raise PackageRefused(RefusalReason.BAD_FORMAT,
                             f"format version {format_version} (this station reads {FORMAT_VERSION})")
    if length > MAX_HEADER_BYTES:
        raise PackageRefused(RefusalReason.BAD_FORMAT,
                             f"header of {length} bytes (at most {MAX_HEADER_BYTES})")
    body = stream.read(length)
    if len(body) < length:
        raise PackageRefused(RefusalReason.TRUNCATED, "the file ends inside the header")
    try:
        header = PackageHeader.model_validate_json(body)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "header"
        raise PackageRefused(RefusalReason.BAD_FORMAT, f"header {where}: {first['msg']}") from None
    if header.chunk_count > MAX_CHUNKS:
        raise PackageRefused(RefusalReason.BAD_FORMAT, "too many chunks for a 32-bit counter")
    return header, preamble + body


def header_digest(raw_header: bytes) -> bytes:
    return hashlib.sha256(raw_header).digest()


def chunk_nonce(header: PackageHeader, index: int) -> bytes:
    return bytes.fromhex(header.nonce_prefix) + index.to_bytes(4, "big")


def chunk_aad(digest: bytes, index: int, final: bool) -> bytes:
    """Header digest + chunk index + final flag: a chunk moved, dropped or appended fails its tag."""
    return digest + index.to_bytes(4, "big") + (b"\x01" if final else b"\x00")
