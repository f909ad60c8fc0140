"""`python manage.py fota pack|inspect|verify`: make, read and check update packages
(docs/update-package.md) from a shell: the manufacturer's build machine packs, a service
technician or a test verifies exactly as the station will before installing.

    fota pack --kind K --version V --key KEYFILE --signing-key PEM --certificate PEM INPUT OUTPUT
    fota inspect FILE                      (the header as stated; nothing is verified, no key needed)
    fota verify FILE --key KEYFILE --root PEM [--kind K] [--installed-version V] [--extract DIR]

INPUT is a file or a folder (its files, recursively). --key may repeat (old and new key while
keys are rotated); --root is a PEM file of one or more manufacturer root certificates.
Exit codes: 0 done; 1 the package is refused or cannot be made (the reason on stderr);
2 bad usage (unknown kind, bad version, unreadable key or certificate file, missing file).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bus.enums import UpdateKind
from workers.fota import package
from workers.fota.errors import PackageRefused, PackError
from workers.fota.header import DEFAULT_CHUNK_BYTES, MAX_CHUNK_BYTES, MIN_CHUNK_BYTES, PackageHeader
from workers.fota.keys import (
    KeyFileError,
    load_certificates,
    load_signing_key,
    load_update_key,
    load_update_keys,
)
from workers.fota.versions import PackageVersion

REFUSED = 1
USAGE_ERROR = 2


def _version(text: str) -> PackageVersion:
    try:
        return PackageVersion.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _chunk_size(text: str) -> int:
    if not text.isdigit() or not MIN_CHUNK_BYTES <= int(text) <= MAX_CHUNK_BYTES:
        raise argparse.ArgumentTypeError(
            f"{text} is not a chunk size in {MIN_CHUNK_BYTES}..{MAX_CHUNK_BYTES} bytes")
    return int(text)


class Command(BaseCommand):
    help = "Make (pack), read (inspect) or check (verify) an encrypted, signed update package."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        kinds = [kind.value for kind in UpdateKind]
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        pack = actions.add_parser("pack", help="encrypt and sign a file or folder into a package")
        pack.add_argument("--kind", required=True, choices=kinds)
        pack.add_argument("--version", dest="package_version", required=True, type=_version)
        pack.add_argument("--key", required=True, type=Path, help="update key file (64 hex digits)")
        pack.add_argument("--signing-key", required=True, type=Path, help="manufacturer signing key, PEM")
        pack.add_argument("--certificate", required=True, type=Path,
                          help="signer certificate, PEM, then any intermediate CA certificates")
        pack.add_argument("--chunk-size", type=_chunk_size, default=DEFAULT_CHUNK_BYTES)
        pack.add_argument("input", type=Path)
        pack.add_argument("output", type=Path)
        inspect = actions.add_parser("inspect", help="print a package's header (not verified)")
        inspect.add_argument("file", type=Path)
        verify = actions.add_parser("verify", help="verify a package as the station does; optionally extract")
        verify.add_argument("file", type=Path)
        verify.add_argument("--key", required=True, type=Path, action="append", help="update key file")
        verify.add_argument("--root", required=True, type=Path, help="manufacturer root certificate(s), PEM")
        verify.add_argument("--kind", choices=kinds, help="refuse a package of another kind")
        verify.add_argument("--installed-version", type=_version, help="refuse a version not newer than this")
        verify.add_argument("--extract", type=Path, metavar="DIR", help="decrypt into DIR (absent or empty)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, f"_{options['action']}")(options)
        except PackageRefused as error:
            raise CommandError(f"refused: {error}", returncode=REFUSED) from error
        except PackError as error:
            raise CommandError(f"cannot pack: {error}", returncode=REFUSED) from error
        except (KeyFileError, FileNotFoundError, FileExistsError, IsADirectoryError) as error:
            raise CommandError(str(error), returncode=USAGE_ERROR) from error

    def _pack(self, options: dict[str, Any]) -> None:
        header = package.pack(
            options["input"], options["output"], kind=UpdateKind(options["kind"]),
            version=options["package_version"], key=load_update_key(options["key"]),
            signing_key=load_signing_key(options["signing_key"]),
            certificates=load_certificates(options["certificate"]), chunk_size=options["chunk_size"])
        self.stdout.write(f"packed {options['output']}\n{_describe(header)}")

    def _inspect(self, options: dict[str, Any]) -> None:
        self.stdout.write(f"{_describe(package.inspect(options['file']))}\n(header only: not verified)")

    def _verify(self, options: dict[str, Any]) -> None:
        keys = load_update_keys(options["key"])
        verified = package.verify(
            options["file"], keys=keys, roots=load_certificates(options["root"]),
            expected_kind=UpdateKind(options["kind"]) if options["kind"] else None,
            installed_version=options["installed_version"])
        self.stdout.write(f"verified {options['file']}\n{_describe(verified.header)}")
        if options["extract"] is not None:
            for path in package.extract(verified, keys, options["extract"]):
                self.stdout.write(f"extracted {path}")


def _describe(header: PackageHeader) -> str:
    lines = [f"kind: {header.kind.value}", f"version: {header.version}",
             f"created: {header.created_at.isoformat(timespec='seconds')}",
             f"key id: {header.key_id}", f"plaintext sha256: {header.plaintext_sha256}",
             f"chunks: {header.chunk_count} of {header.chunk_size} bytes"]
    lines += [f"file: {item.name} ({item.size} bytes)" for item in header.files]
    return "\n".join(lines)
