"""What a downloaded package is checked against: the update key(s) and the manufacturer root(s)
provisioned at activation (STATION_DATA_DIR/keys/update*.key, keys/manufacturer-root.pem), and
the version installed now (anti-replay: a package must be newer, see `installed_version`).

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

import logging
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from django.conf import settings

from bus.enums import UpdateKind
from webapp.env import REPO_ROOT, StationEnv
from webapp.station.models import FirmwareUpdate
from workers.fota.bundle import MANIFEST_NAME
from workers.fota.keys import KeyFileError, UpdateKey, load_certificates, load_update_keys
from workers.fota.versions import PackageVersion

UPDATE_KEY_FILE = "update.key"
UPDATE_KEY_FILES = "update*.key"  # update.key and, while rotating, update-<key_id>.key
MANUFACTURER_ROOT_FILE = "manufacturer-root.pem"
VERSION_FILE = "VERSION.{kind}"  # beside the running code; written by ops/build-deb.sh

log = logging.getLogger(__name__)


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


def installed_version(kind: UpdateKind, env: StationEnv | None = None, *,
                      app_dir: Path = REPO_ROOT) -> PackageVersion | None:
    """The version of `kind` installed now (a package must be newer); None when nothing says.

    The highest of what each source says, so a station that never had an update over the air
    (activated with 2.0.0, or its database reset) still refuses a genuinely signed 1.0.0:
    - the last update of `kind` that ended Installed (the FirmwareUpdate rows);
    - the version file its deb put beside the running code: `app_dir`/VERSION.<kind>
      (ops/build-deb.sh; app_dir is /opt/station/app on a station);
    - controller-firmware: the highest bundle folder of `env.firmware_dir` (STATION_FIRMWARE_DIR,
      default settings.STATION_ENV's) that holds a manifest.json, as its deb installs them.
    A development checkout has no version file and usually no bundle: the history alone decides.
    An unreadable or unparseable version file (or bundle folder name) is logged and ignored:
    that is safe because a package's signature is still checked, and it is never a downgrade path:
    the highest source wins, so a file can only raise the bar, and ignoring a broken one leaves it
    where the other sources put it (no lower than before version files existed).
    An unparseable history row still raises ValueError: the jobs wrote it, so it is a bug to show.
    """
    row = (FirmwareUpdate.objects.filter(kind=kind.value, stage=FirmwareUpdate.Stage.INSTALLED)
           .order_by("-stage_changed_at").values_list("version", flat=True).first())
    found = [] if row is None else [PackageVersion.parse(row)]
    found += _version_file(app_dir / VERSION_FILE.format(kind=kind.value))
    if kind is UpdateKind.CONTROLLER_FIRMWARE:
        found += _bundle_versions((env or settings.STATION_ENV).firmware_dir)
    return max(found, default=None)


def _version_file(path: Path) -> list[PackageVersion]:
    try:
        return [PackageVersion.parse(path.read_text(encoding="utf-8").strip())]
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, ValueError) as error:
        log.warning("version file %s ignored (the FOTA history and the package signature still apply): %s",
                    path, error)
        return []


def _bundle_versions(firmware_dir: Path) -> list[PackageVersion]:
    """The versions of the bundle folders installed (a folder with a manifest.json)."""
    try:
        folders = [folder for folder in firmware_dir.iterdir() if (folder / MANIFEST_NAME).is_file()]
    except FileNotFoundError:
        return []
    except OSError as error:
        log.warning("firmware folder %s ignored: %s", firmware_dir, error)
        return []
    versions = []
    for folder in folders:
        try:
            versions.append(PackageVersion.parse(folder.name))
        except ValueError as error:
            log.warning("firmware bundle folder %s ignored: %s", folder, error)
    return versions
