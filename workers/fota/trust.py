"""What a downloaded package is checked against: the update key(s) and the manufacturer root(s)
provisioned at activation (STATION_DATA_DIR/keys/update*.key, keys/manufacturer-root.pem), and
the version installed now (anti-replay: the last update of that kind that ended Installed).

Every `keys/update*.key` is loaded (update.key and, while keys are rotated, update-<key_id>.key
beside it: docs/update-package.md): the package's `key_id` picks among them. The package's own
signature is checked against the provisioned manufacturer root only, as issue 7 asks ("the
manufacturer certificate or key provisioned at activation"): a ManufacturerRootCertificate the
CSMS installs (OCPP InstallCertificate) serves ocpp16's check of a SignedUpdateFirmware's
signing certificate, never as a signer root of the package itself (a CSMS must not be able to
make the station trust packages it signed).

A station without a key or a root cannot verify anything, so it installs nothing: that is a
`TrustUnavailable`, reported like a refused package.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from bus.enums import UpdateKind
from webapp.env import StationEnv
from webapp.station.models import FirmwareUpdate
from workers.fota.keys import KeyFileError, UpdateKey, load_certificates, load_update_keys
from workers.fota.versions import PackageVersion

UPDATE_KEY_FILE = "update.key"
UPDATE_KEY_FILES = "update*.key"  # update.key and, while rotating, update-<key_id>.key
MANUFACTURER_ROOT_FILE = "manufacturer-root.pem"


class TrustUnavailable(Exception):
    """No usable update key or manufacturer root: nothing can be verified."""


@dataclass(frozen=True)
class Trust:
    keys: dict[str, UpdateKey]
    roots: list[x509.Certificate]


def load_trust(env: StationEnv) -> Trust:
    key_files = sorted(env.keys_dir.glob(UPDATE_KEY_FILES))
    if not key_files:
        raise TrustUnavailable(f"no update key: {env.keys_dir / UPDATE_KEY_FILE} (or another "
                               f"{UPDATE_KEY_FILES}) is missing")
    try:
        keys = load_update_keys(key_files)
        roots = load_certificates(env.keys_dir / MANUFACTURER_ROOT_FILE)
    except KeyFileError as error:
        raise TrustUnavailable(str(error)) from None
    return Trust(keys, roots)


def installed_version(kind: UpdateKind) -> PackageVersion | None:
    """The version of the last update of `kind` that was installed; None before the first."""
    version = (FirmwareUpdate.objects.filter(kind=kind.value, stage=FirmwareUpdate.Stage.INSTALLED)
               .order_by("-stage_changed_at").values_list("version", flat=True).first())
    return None if version is None else PackageVersion.parse(version)
