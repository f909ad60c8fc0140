"""TLS client contexts for the CSMS connection (Security Whitepaper ed.2 A00.FR.3xx/4xx).

Profiles 2 and 3 trust only the CentralSystemRootCertificate(s) the CSMS installed, never the
system's CAs; TLS 1.2 or newer; the host name is checked against the certificate; no TLS
compression (Python's default). The TLS 1.2 suites are the whitepaper's (AES-GCM with ECDSA or
RSA), with ECDHE-RSA added because common servers offer only that for RSA keys. A wss:// URL
under profile 0 or 1 (plain OCPP-J TLS) trusts the system's CAs and the installed roots.
"""

from __future__ import annotations

import ssl
from pathlib import Path

TLS12_CIPHERS = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
    "AES128-GCM-SHA256", "AES256-GCM-SHA384",
))


class NoTrustAnchor(ValueError):
    """Profile 2/3 without any CentralSystemRootCertificate: nothing could be trusted."""


def client_context(central_system_roots: list[str], *, system_cas: bool,
                   client_certificate: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    """A context verifying the CSMS by `central_system_roots` (PEM texts), plus the system's
    CAs when `system_cas`; `client_certificate` = (chain file, key file) for profile 3."""
    if not central_system_roots and not system_cas:
        raise NoTrustAnchor("no CentralSystemRootCertificate is installed")
    context = ssl.create_default_context() if system_cas else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_ciphers(TLS12_CIPHERS)
    if central_system_roots:
        context.load_verify_locations(cadata="\n".join(central_system_roots))
    if client_certificate is not None:
        chain, key = client_certificate
        context.load_cert_chain(certfile=chain, keyfile=key)
    return context
