"""Over-the-air update packages: one encrypted, signed file per update (docs/update-package.md).

A package is checked completely (format, kind, version, signer certificate, signature over
every byte) before a single plaintext byte reaches the disk, so a tampered, truncated,
wrongly signed or replayed file is never installed.
"""
