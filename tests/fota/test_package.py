"""The update package format (workers/fota, docs/update-package.md): real AES-GCM, real ECDSA,
certificates made here. Every refusal is a typed reason and leaves nothing extracted."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bus.enums import UpdateKind
from tests.support.tls import CertificateAuthority, Key, new_key, pem
from workers.fota import header as fmt
from workers.fota import package, signer
from workers.fota.errors import PackageRefused, PackError, RefusalReason
from workers.fota.header import PackageHeader, PayloadFile
from workers.fota.keys import (
    KeyFileError,
    UpdateKey,
    load_update_key,
    load_update_keys,
    new_update_key,
    write_update_key,
)
from workers.fota.versions import PackageVersion

CHUNK = fmt.MIN_CHUNK_BYTES  # small chunks: many of them in a small file


@dataclass
class Manufacturer:
    root: CertificateAuthority
    key: Key
    chain: list[x509.Certificate]


def manufacturer(root: CertificateAuthority | None = None, **issue: object) -> Manufacturer:
    root = root or CertificateAuthority.create("Manufacturer Root")
    key = new_key()
    return Manufacturer(root, key, [root.issue(key.public_key(), "Update Signer", **issue)])  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def maker() -> Manufacturer:
    return manufacturer()


@pytest.fixture(scope="module")
def update_key() -> UpdateKey:
    return new_update_key()


def make(folder: Path, maker: Manufacturer, key: UpdateKey, payload: bytes = b"firmware" * 500, *,
         kind: UpdateKind = UpdateKind.SOFTWARE, version: str = "1.2.0") -> Path:
    source = folder / "station_1.2.0_all.deb"
    source.write_bytes(payload)
    output = folder / "update.pkg"
    package.pack(source, output, kind=kind, version=PackageVersion.parse(version), key=key,
                 signing_key=maker.key, certificates=maker.chain, chunk_size=CHUNK)
    return output


def open_package(path: Path, maker: Manufacturer, key: UpdateKey, destination: Path,
                 **checks: object) -> Path:
    keys = {key.key_id: key}
    verified = package.verify(path, keys=keys, roots=[maker.root.certificate], **checks)  # type: ignore[arg-type]
    package.extract(verified, keys, destination)
    return destination


def refusal(path: Path, maker: Manufacturer, key: UpdateKey, **checks: object) -> RefusalReason:
    destination = path.parent / "out"
    with pytest.raises(PackageRefused) as error:
        open_package(path, maker, key, destination, **checks)
    assert not destination.exists()
    assert not [item for item in path.parent.iterdir() if ".partial-" in item.name]
    return error.value.reason


def with_bytes(path: Path, change) -> Path:  # type: ignore[no-untyped-def]
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(change(data)))
    return path


def layout(path: Path) -> tuple[PackageHeader, int, int]:
    """(header, offset of the first chunk, offset of the signature block)."""
    with path.open("rb") as stream:
        header, raw = fmt.read_header(stream)
    ciphertext = sum(header.chunk_plain_size(i) + fmt.TAG_BYTES for i in range(header.chunk_count))
    return header, len(raw), len(raw) + ciphertext


# ---- round trips ----

@pytest.mark.parametrize(("size", "chunks"), [(0, 1), (1, 1), (CHUNK - 1, 1), (CHUNK, 1), (CHUNK + 1, 2),
                                              (3 * CHUNK, 3), (5 * CHUNK + 17, 6)])
def test_round_trip_gives_the_same_bytes(tmp_path: Path, maker, update_key, size: int, chunks: int) -> None:
    payload = os.urandom(size)
    path = make(tmp_path, maker, update_key, payload)

    out = open_package(path, maker, update_key, tmp_path / "out")

    assert (out / "station_1.2.0_all.deb").read_bytes() == payload
    assert package.inspect(path).chunk_count == chunks


def test_a_folder_round_trips_with_nested_and_empty_files(tmp_path: Path, maker, update_key) -> None:
    source = tmp_path / "bundle"
    (source / "ccs").mkdir(parents=True)
    files = {"manifest.json": b"{}", "ccs/ctrl.bin": os.urandom(3 * CHUNK + 5), "empty.bin": b"",
             "z.bin": os.urandom(10)}
    for name, data in files.items():
        (source / name).write_bytes(data)
    path = tmp_path / "fw.pkg"
    package.pack(source, path, kind=UpdateKind.CONTROLLER_FIRMWARE, version=PackageVersion.parse("2.0"),
                 key=update_key, signing_key=maker.key, certificates=maker.chain, chunk_size=CHUNK)

    open_package(path, maker, update_key, tmp_path / "out")

    assert {p.relative_to(tmp_path / "out").as_posix(): p.read_bytes()
            for p in (tmp_path / "out").rglob("*") if p.is_file()} == files


def test_inspect_reads_the_header_without_any_key(tmp_path: Path, maker, update_key) -> None:
    payload = b"x" * 5000
    header = package.inspect(make(tmp_path, maker, update_key, payload, kind=UpdateKind.WEB_CONFIGURATOR))

    assert (header.kind, header.version, header.key_id) == (UpdateKind.WEB_CONFIGURATOR, "1.2.0",
                                                            update_key.key_id)
    assert header.files == (PayloadFile(name="station_1.2.0_all.deb", size=5000),)
    assert header.plaintext_sha256 == hashlib.sha256(payload).hexdigest()


def test_a_large_package_is_streamed_not_held_in_memory(tmp_path: Path, maker, update_key) -> None:
    source = tmp_path / "big.deb"
    with source.open("wb") as file:
        for _ in range(24):
            file.write(os.urandom(1024 * 1024))
    path = tmp_path / "big.pkg"
    tracemalloc.start()
    try:
        package.pack(source, path, kind=UpdateKind.SOFTWARE, version=PackageVersion.parse("3"),
                     key=update_key, signing_key=maker.key, certificates=maker.chain)
        open_package(path, maker, update_key, tmp_path / "out")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert peak < 2 * 1024 * 1024, f"peak {peak} bytes for a 24 MiB package"
    assert (tmp_path / "out" / "big.deb").stat().st_size == 24 * 1024 * 1024


# ---- tampering ----

def test_a_bit_flipped_in_the_magic_is_not_a_package(tmp_path: Path, maker, update_key) -> None:
    path = with_bytes(make(tmp_path, maker, update_key), lambda d: d.__setitem__(0, d[0] ^ 1) or d)
    assert refusal(path, maker, update_key) is RefusalReason.BAD_FORMAT


def test_a_rewritten_header_breaks_the_signature(tmp_path: Path, maker, update_key) -> None:
    path = make(tmp_path, maker, update_key)
    header, start, _ = layout(path)
    forged = fmt.encode_header(header.model_copy(update={"version": "9.9.9"}))
    with_bytes(path, lambda d: forged + d[start:])

    assert refusal(path, maker, update_key) is RefusalReason.SIGNATURE_INVALID


@pytest.mark.parametrize("where", ["first chunk", "last chunk", "signature"])
def test_a_flipped_bit_is_refused_before_decryption(tmp_path: Path, maker, update_key, where: str) -> None:
    path = make(tmp_path, maker, update_key, os.urandom(3 * CHUNK))
    _, start, signature = layout(path)
    offset = {"first chunk": start + 3, "last chunk": signature - 1, "signature": signature + 10}[where]
    with_bytes(path, lambda d: d.__setitem__(offset, d[offset] ^ 0x20) or d)

    assert refusal(path, maker, update_key) is RefusalReason.SIGNATURE_INVALID


@pytest.mark.parametrize("cut", ["preamble", "header", "inside a chunk", "at a chunk boundary",
                                 "before the signature", "inside the signature"])
def test_a_truncated_file_is_refused(tmp_path: Path, maker, update_key, cut: str) -> None:
    path = make(tmp_path, maker, update_key, os.urandom(3 * CHUNK))
    _, start, signature = layout(path)
    length = {"preamble": 5, "header": start - 10, "inside a chunk": start + 100,
              "at a chunk boundary": start + CHUNK + fmt.TAG_BYTES, "before the signature": signature,
              "inside the signature": signature + 20}[cut]
    with_bytes(path, lambda d: d[:length])

    assert refusal(path, maker, update_key) is RefusalReason.TRUNCATED


def test_appended_bytes_are_refused(tmp_path: Path, maker, update_key) -> None:
    path = with_bytes(make(tmp_path, maker, update_key), lambda d: d + b"\x00")
    assert refusal(path, maker, update_key) is RefusalReason.TRAILING_DATA


def test_two_swapped_chunks_are_refused(tmp_path: Path, maker, update_key) -> None:
    path = make(tmp_path, maker, update_key, os.urandom(3 * CHUNK))
    _, start, _ = layout(path)
    size = CHUNK + fmt.TAG_BYTES
    first, second = slice(start, start + size), slice(start + size, start + 2 * size)
    with_bytes(path, lambda d: d[:first.start] + d[second] + d[first] + d[second.stop:])

    assert refusal(path, maker, update_key) is RefusalReason.SIGNATURE_INVALID


# ---- the encryption layer on its own (what a signer with a bug or a stolen key could send) ----

def forge(path: Path, maker: Manufacturer, key: UpdateKey, chunks: list[bytes], *, sha256: str | None = None,
          order: list[int] | None = None, final: int | None = None) -> Path:
    """A correctly signed package written by hand from the documented format."""
    plain = b"".join(chunks)
    header = PackageHeader(kind=UpdateKind.SOFTWARE, version="1.0", created_at=datetime.now(UTC),
                           files=(PayloadFile(name="a.bin", size=len(plain)),),
                           plaintext_sha256=sha256 or hashlib.sha256(plain).hexdigest(), chunk_size=CHUNK,
                           nonce_prefix="00" * fmt.NONCE_PREFIX_BYTES, key_id=key.key_id,
                           signer_certificates=tuple(pem(c) for c in maker.chain))
    raw = fmt.encode_header(header)
    digest = fmt.header_digest(raw)
    final = len(chunks) - 1 if final is None else final
    cipher = AESGCM(key.secret)
    sealed = [cipher.encrypt(fmt.chunk_nonce(header, i), chunk, fmt.chunk_aad(digest, i, i == final))
              for i, chunk in enumerate(chunks)]
    body = raw + b"".join(sealed[i] for i in (order or range(len(chunks))))
    path.write_bytes(body + signer.sign_digest(maker.key, hashlib.sha256(body).digest()))
    return path


def test_chunks_reordered_and_signed_again_fail_their_tags(tmp_path: Path, maker, update_key) -> None:
    chunks = [os.urandom(CHUNK), os.urandom(CHUNK), os.urandom(100)]
    path = forge(tmp_path / "p.pkg", maker, update_key, chunks, order=[1, 0, 2])
    assert refusal(path, maker, update_key) is RefusalReason.DECRYPTION_FAILED


def test_a_last_chunk_not_sealed_as_final_fails_its_tag(tmp_path: Path, maker, update_key) -> None:
    path = forge(tmp_path / "p.pkg", maker, update_key, [os.urandom(CHUNK), b"end"], final=0)
    assert refusal(path, maker, update_key) is RefusalReason.DECRYPTION_FAILED


def test_a_plaintext_that_differs_from_the_header_digest_is_refused(tmp_path: Path, maker,
                                                                    update_key) -> None:
    path = forge(tmp_path / "p.pkg", maker, update_key, [b"abc"], sha256="0" * 64)
    assert refusal(path, maker, update_key) is RefusalReason.CHECKSUM_MISMATCH


def test_a_wrong_aes_key_fails_the_tag(tmp_path: Path, maker, update_key) -> None:
    path = make(tmp_path, maker, update_key)
    verified = package.verify(path, keys={update_key.key_id: update_key}, roots=[maker.root.certificate])

    with pytest.raises(PackageRefused) as error:
        package.extract(verified, {update_key.key_id: new_update_key()}, tmp_path / "out")

    assert error.value.reason is RefusalReason.DECRYPTION_FAILED
    assert not (tmp_path / "out").exists()


def test_a_package_for_a_key_the_station_lacks_is_refused(tmp_path: Path, maker, update_key) -> None:
    path = make(tmp_path, maker, new_update_key())
    assert refusal(path, maker, update_key) is RefusalReason.UNKNOWN_KEY


def test_a_file_changed_after_verification_is_not_extracted(tmp_path: Path, maker, update_key) -> None:
    path = make(tmp_path, maker, update_key)
    keys = {update_key.key_id: update_key}
    verified = package.verify(path, keys=keys, roots=[maker.root.certificate])
    offset = layout(path)[1] - 3  # inside the header's JSON
    with_bytes(path, lambda d: d.__setitem__(offset, d[offset] ^ 1) or d)

    with pytest.raises(PackageRefused) as error:
        package.extract(verified, keys, tmp_path / "out")

    assert error.value.reason is RefusalReason.CHANGED
    assert not (tmp_path / "out").exists()


# ---- signer, kind, version ----

def test_a_signer_with_an_intermediate_ca_is_accepted(tmp_path: Path, update_key) -> None:
    root = CertificateAuthority.create("Manufacturer Root")
    intermediate_key = new_key()
    intermediate = CertificateAuthority("Updates CA", intermediate_key,
                                        root.issue(intermediate_key.public_key(), "Updates CA", ca=True))
    signer_maker = manufacturer(intermediate)
    signer_maker.chain.append(intermediate.certificate)
    path = make(tmp_path, signer_maker, update_key)

    verified = package.verify(path, keys={update_key.key_id: update_key}, roots=[root.certificate])

    assert verified.header.version == "1.2.0"


def test_a_signer_from_another_root_is_untrusted(tmp_path: Path, maker, update_key) -> None:
    path = make(tmp_path, manufacturer(), update_key)
    assert refusal(path, maker, update_key) is RefusalReason.CERTIFICATE_UNTRUSTED


def test_a_signer_certificate_not_for_code_signing_is_untrusted(tmp_path: Path, maker, update_key) -> None:
    web_server = manufacturer(maker.root, server_hosts=("updates.example",))
    path = make(tmp_path, web_server, update_key)
    assert refusal(path, maker, update_key) is RefusalReason.CERTIFICATE_UNTRUSTED


def test_an_expired_signer_certificate_is_refused(tmp_path: Path, maker, update_key) -> None:
    expired = manufacturer(maker.root, valid_from=datetime.now(UTC) - timedelta(days=10), days=1)
    path = make(tmp_path, expired, update_key)
    assert refusal(path, maker, update_key) is RefusalReason.CERTIFICATE_EXPIRED


def test_no_provisioned_root_trusts_nothing(tmp_path: Path, maker, update_key) -> None:
    path = make(tmp_path, maker, update_key)
    with pytest.raises(PackageRefused) as error:
        package.verify(path, keys={update_key.key_id: update_key}, roots=[])
    assert error.value.reason is RefusalReason.CERTIFICATE_UNTRUSTED


def test_a_package_of_another_kind_is_refused(tmp_path: Path, maker, update_key) -> None:
    path = make(tmp_path, maker, update_key, kind=UpdateKind.WEB_CONFIGURATOR)
    assert refusal(path, maker, update_key, expected_kind=UpdateKind.SOFTWARE) is RefusalReason.WRONG_KIND


@pytest.mark.parametrize(("installed", "accepted"), [("1.9.3", True), ("1.10.0", False), ("1.10", False),
                                                     ("1.10.1", False), ("2.0.0", False)])
def test_only_a_newer_version_is_accepted(tmp_path: Path, maker, update_key, installed: str,
                                          accepted: bool) -> None:
    path = make(tmp_path, maker, update_key, version="1.10.0")
    checks = {"installed_version": PackageVersion.parse(installed)}
    if accepted:
        assert open_package(path, maker, update_key, tmp_path / "out", **checks).is_dir()
    else:
        assert refusal(path, maker, update_key, **checks) is RefusalReason.NOT_NEWER


@pytest.mark.parametrize("text", ["", "1.", "v1.2", "1.2.3-rc1", "1.2.3.4.5", "-1"])
def test_a_version_must_be_dotted_numbers(text: str) -> None:
    with pytest.raises(ValueError, match="is not a version"):
        PackageVersion.parse(text)


@pytest.mark.parametrize("name", ["../etc/passwd", "/etc/passwd", "a/../../b", "a\\b", "./a"])
def test_a_header_naming_a_file_outside_the_folder_is_refused(tmp_path: Path, maker, update_key,
                                                               name: str) -> None:
    path = make(tmp_path, maker, update_key, b"")
    header, start, _ = layout(path)
    unsafe = header.model_copy(update={"files": (PayloadFile.model_construct(name=name, size=0),)})
    with_bytes(path, lambda d: fmt.encode_header(unsafe) + d[start:])

    assert refusal(path, maker, update_key) is RefusalReason.BAD_FORMAT


def test_a_huge_header_length_is_refused_without_reading_it(tmp_path: Path, maker, update_key) -> None:
    path = tmp_path / "p.pkg"
    path.write_bytes(fmt.PREAMBLE.pack(fmt.MAGIC, fmt.FORMAT_VERSION, 2**31))
    assert refusal(path, maker, update_key) is RefusalReason.BAD_FORMAT


def test_another_format_version_is_refused(tmp_path: Path, maker, update_key) -> None:
    path = make(tmp_path, maker, update_key)
    with_bytes(path, lambda d: fmt.PREAMBLE.pack(fmt.MAGIC, 2, 0) + d[fmt.PREAMBLE.size:])
    assert refusal(path, maker, update_key) is RefusalReason.BAD_FORMAT


# ---- packing and key files ----

def test_packing_with_a_certificate_for_another_key_fails(tmp_path: Path, maker, update_key) -> None:
    other = manufacturer(maker.root)
    with pytest.raises(PackError, match="not for the signing key"):
        package.pack(tmp_path, tmp_path / "x.pkg", kind=UpdateKind.SOFTWARE,
                     version=PackageVersion.parse("1"), key=update_key, signing_key=maker.key,
                     certificates=other.chain)
    assert not (tmp_path / "x.pkg").exists()


def test_extract_refuses_a_folder_that_has_files(tmp_path: Path, maker, update_key) -> None:
    path = make(tmp_path, maker, update_key)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep").write_text("x")
    with pytest.raises(FileExistsError):
        open_package(path, maker, update_key, tmp_path / "out")
    assert (tmp_path / "out" / "keep").read_text() == "x"


def test_an_update_key_file_round_trips_with_mode_0600(tmp_path: Path) -> None:
    key = new_update_key()
    write_update_key(tmp_path / "keys" / "update.key", key)

    assert (tmp_path / "keys" / "update.key").stat().st_mode & 0o777 == 0o600
    assert load_update_keys([tmp_path / "keys" / "update.key"]) == {key.key_id: key}
    assert key.secret.hex() not in repr(key)


@pytest.mark.parametrize(("content", "mode", "reason"), [("ab" * 32, 0o644, "lets others read it"),
                                                         ("ab" * 31, 0o600, "not 64 hex digits"),
                                                         ("zz" * 32, 0o600, "not 64 hex digits")])
def test_an_unusable_update_key_file_is_refused(tmp_path: Path, content: str, mode: int, reason: str) -> None:
    path = tmp_path / "update.key"
    path.write_text(content)
    path.chmod(mode)
    with pytest.raises(KeyFileError, match=reason):
        load_update_key(path)
