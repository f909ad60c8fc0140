"""What a downloaded package is checked against: the update key(s) and manufacturer root(s)
provisioned at activation (STATION_DATA_DIR/keys/update.key, keys/manufacturer-root.pem), the
ManufacturerRootCertificates the CSMS installed (OCPP InstallCertificate), and the version
installed now (anti-replay: the last update of that kind that ended Installed).

A station without a key or a root cannot verify anything, so it installs nothing: that is a
`TrustUnavailable`, reported like a refused package.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from bus.enums import UpdateKind
from webapp.env import StationEnv
from webapp.station.models import FirmwareUpdate, InstalledCertificate
from workers.fota.keys import KeyFileError, UpdateKey, load_certificates, load_update_keys
from workers.fota.versions import PackageVersion

UPDATE_KEY_FILE = "update.key"
MANUFACTURER_ROOT_FILE = "manufacturer-root.pem"
MANUFACTURER_ROOT = "ManufacturerRootCertificate"  # InstalledCertificate.certificate_type


class TrustUnavailable(Exception):
    """No usable update key or manufacturer root: nothing can be verified."""


@dataclass(frozen=True)
class Trust:
    keys: dict[str, UpdateKey]
    roots: list[x509.Certificate]


def load_trust(env: StationEnv) -> Trust:
    try:
        keys = load_update_keys([env.keys_dir / UPDATE_KEY_FILE])
    except KeyFileError as error:
        raise TrustUnavailable(str(error)) from None
    roots = _installed_roots()
    root_file = env.keys_dir / MANUFACTURER_ROOT_FILE
    if root_file.exists() or not roots:
        try:
            roots = load_certificates(root_file) + roots
        except KeyFileError as error:
            raise TrustUnavailable(str(error)) from None
    return Trust(keys, roots)


def _installed_roots() -> list[x509.Certificate]:
    pems = (InstalledCertificate.objects.filter(certificate_type=MANUFACTURER_ROOT)
            .values_list("pem", flat=True))
    return [x509.load_pem_x509_certificate(pem.encode()) for pem in pems]


def installed_version(kind: UpdateKind) -> PackageVersion | None:
    """The version of the last update of `kind` that was installed; None before the first."""
    version = (FirmwareUpdate.objects.filter(kind=kind.value, stage=FirmwareUpdate.Stage.INSTALLED)
               .order_by("-stage_changed_at").values_list("version", flat=True).first())
    return None if version is None else PackageVersion.parse(version)
