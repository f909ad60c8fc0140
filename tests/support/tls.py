"""Certificates made in the test with `cryptography`: a CA, a server certificate for
127.0.0.1/localhost, client certificates, CSR signing, and the TLS contexts a test CSMS
serves with. EC P-256 keys: fast to make, valid for the whitepaper (EC >= 224 bits)."""

from __future__ import annotations

import ipaddress
import sqlite3
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Key = ec.EllipticCurvePrivateKey


def new_key() -> Key:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: Key) -> str:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


def pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(Encoding.PEM).decode()


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _builder(subject: x509.Name, issuer: x509.Name, public_key: object, valid_from: datetime,
             days: float) -> x509.CertificateBuilder:
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(public_key).serial_number(x509.random_serial_number())  # type: ignore[arg-type]
            .not_valid_before(valid_from).not_valid_after(valid_from + timedelta(days=days)))


@dataclass
class CertificateAuthority:
    name: str
    key: Key
    certificate: x509.Certificate

    @property
    def pem(self) -> str:
        return pem(self.certificate)

    @classmethod
    def create(cls, name: str = "Test Root CA", *, days: float = 365) -> CertificateAuthority:
        key = new_key()
        subject = _name(name, "Test PKI")
        now = datetime.now(UTC) - timedelta(minutes=5)
        certificate = (_builder(subject, subject, key.public_key(), now, days)
                       .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                       .sign(key, hashes.SHA256()))
        return cls(name, key, certificate)

    def issue(self, public_key: object, common_name: str, *, organization: str | None = None,
              server_hosts: tuple[str, ...] = (), client: bool = False, ca: bool = False,
              valid_from: datetime | None = None, days: float = 90) -> x509.Certificate:
        start = valid_from or datetime.now(UTC) - timedelta(minutes=5)
        subject = _name(common_name, organization)
        builder = _builder(subject, self.certificate.subject, public_key, start, days)
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        usage = [ExtendedKeyUsageOID.SERVER_AUTH] if server_hosts else []
        usage += [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        if server_hosts:
            names = [_host_name(host) for host in server_hosts]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        if usage:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def sign_csr(self, csr_pem: str, **options: object) -> x509.Certificate:
        """Sign a CSR as given (its CN and O), as a CSMS's CA would for a charge point."""
        request = x509.load_pem_x509_csr(csr_pem.encode())
        assert request.is_signature_valid
        common_name = request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        organizations = request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        return self.issue(request.public_key(), str(common_name), client=True,
                          organization=str(organizations[0].value) if organizations else None,
                          **options)  # type: ignore[arg-type]


def _host_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def write_pair(folder: Path, stem: str, certificates: list[x509.Certificate], key: Key) -> tuple[Path, Path]:
    """(chain file, key file) under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    chain, key_file = folder / f"{stem}.pem", folder / f"{stem}.key"
    chain.write_text("".join(pem(certificate) for certificate in certificates))
    key_file.write_text(key_pem(key))
    key_file.chmod(0o600)
    return chain, key_file


def server_context(ca: CertificateAuthority, folder: Path, *, client_ca: CertificateAuthority | None = None,
                   hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> ssl.SSLContext:
    """A CSMS's TLS context: a server certificate for `hosts` issued by `ca`; with `client_ca`,
    a client certificate issued by it is required (security profile 3)."""
    key = new_key()
    certificate = ca.issue(key.public_key(), hosts[0], server_hosts=hosts)
    chain, key_file = write_pair(folder, f"server-{ca.name.replace(' ', '_')}", [certificate], key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain, key_file)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=client_ca.pem)
    return context


# ---- commissioning: what an operator sets up before OCPP starts (Security Whitepaper A00.FR.001) ----

def seed_configuration(database: Path, **values: str) -> None:
    """Configuration keys stored as if ChangeConfiguration had set them (table OcppSetting)."""
    with sqlite3.connect(database) as connection:
        connection.executemany(
            "INSERT OR REPLACE INTO station_ocppsetting (key, value, changed_at) "
            "VALUES (?, ?, datetime('now'))",
            list(values.items()))


def seed_root(database: Path, certificate: x509.Certificate,
              use: str = "CentralSystemRootCertificate") -> None:
    """A CA certificate installed as if by InstallCertificate (table InstalledCertificate)."""
    from workers.ocpp16.security.certificates import hash_data

    data = hash_data(certificate)
    with sqlite3.connect(database) as connection:
        connection.execute(
            "INSERT INTO station_installedcertificate (certificate_type, pem, hash_algorithm, "
            "issuer_name_hash, issuer_key_hash, serial_number, installed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, datetime('now'))",
            (use, pem(certificate), data.hash_algorithm, data.issuer_name_hash, data.issuer_key_hash,
             data.serial_number))


def seed_station_certificate(data_dir: Path, ca: CertificateAuthority, common_name: str,
                             **options: object) -> x509.Certificate:
    """The station's key and certificate (security profile 3) where ocpp16 keeps them."""
    key = new_key()
    certificate = ca.issue(key.public_key(), common_name, client=True, **options)  # type: ignore[arg-type]
    write_pair(data_dir / "certs", "station", [certificate], key)
    return certificate
