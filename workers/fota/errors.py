"""Why a package is refused: one typed error with a closed reason, so the jobs and the OCPP
side can map it (InvalidSignature / InstallationFailed, a security event) without parsing text."""

from __future__ import annotations

from enum import StrEnum


class RefusalReason(StrEnum):
    """The first problem found; the value is a stable key for logs and status rows."""

    BAD_FORMAT = "bad-format"  # not a package: magic, format version, header fields
    WRONG_KIND = "wrong-kind"  # a package for another part of the station
    NOT_NEWER = "not-newer"  # its version is not newer than the installed one (replay)
    UNKNOWN_KEY = "unknown-key"  # encrypted for an update key this station does not hold
    CERTIFICATE_UNTRUSTED = "certificate-untrusted"  # signer does not chain to the manufacturer root
    CERTIFICATE_EXPIRED = "certificate-expired"  # a certificate of the chain is outside its validity
    SIGNATURE_INVALID = "signature-invalid"  # the signature does not cover these bytes
    TRUNCATED = "truncated"  # the file ends before the signature is complete
    TRAILING_DATA = "trailing-data"  # bytes after the signature
    DECRYPTION_FAILED = "decryption-failed"  # an AES-GCM tag did not verify
    CHECKSUM_MISMATCH = "checksum-mismatch"  # the plaintext's SHA-256 is not the header's
    CHANGED = "changed"  # the file changed between verification and extraction

    @property
    def is_signature_problem(self) -> bool:
        """True for refusals OCPP reports as InvalidSignature (the rest: InstallationFailed)."""
        return self in _SIGNATURE_PROBLEMS


_SIGNATURE_PROBLEMS = frozenset({RefusalReason.CERTIFICATE_UNTRUSTED, RefusalReason.CERTIFICATE_EXPIRED,
                                 RefusalReason.SIGNATURE_INVALID})


class PackageRefused(Exception):
    """The package must not be installed; `reason` says why, the message gives the detail."""

    def __init__(self, reason: RefusalReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class PackError(Exception):
    """A package cannot be made from these inputs (unreadable key, certificate not for the key...)."""
