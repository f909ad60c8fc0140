#!/usr/bin/env bash
# Build one of the station's three deb packages with dpkg-deb (no debhelper):
#   software             bus/ workers/ webapp/ (Python) ops/ manage.py requirements.txt under
#                        /opt/station/app, systemd units (ops/systemd) under /lib/systemd/system
#   web-configurator     hmi_static/ and webapp/*/templates/ under /opt/station/app: the screens
#                        only, so they can be updated without the control code (no shared files)
#   Both also hold /opt/station/app/VERSION.<kind> (the deb version, one line): the running
#   station's FOTA replay check reads it (workers/fota/trust.py), so an old package is refused
#   even when the database has no history of updates (a station activated with this version).
#   controller-firmware  the manifest's firmware files and manifest.json under
#                        /opt/station/firmware/<version>/ (checked by workers/fota/bundle.py)
# Control files come from ops/packaging/<kind>.control (@VERSION@, @MAINTAINER@,
# @INSTALLED_SIZE@), maintainer scripts from ops/packaging/<kind>.{postinst,prerm,...}.
#
# Reproducible: every file gets the mtime SOURCE_DATE_EPOCH (default: the last commit's time),
# modes are normalised, owner root:root (--root-owner-group); dpkg-deb sorts the file list.
# Environment: SOURCE_DATE_EPOCH, DEB_MAINTAINER (the Maintainer field).
# Exit codes: 0 built (the .deb's path on stdout), 1 missing or bad inputs, 2 bad usage.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PACKAGING="$REPO/ops/packaging"
APP_PREFIX="opt/station/app"
FIRMWARE_PREFIX="opt/station/firmware"
UNIT_PREFIX="lib/systemd/system"
MAINTAINER="${DEB_MAINTAINER:-EV Station Software <software@station.invalid>}"
CLUTTER=(--exclude=__pycache__ --exclude='*.pyc' --exclude='*.pyo' --exclude=.pytest_cache
    --exclude=.ruff_cache --exclude=.mypy_cache)

usage() {
    cat >&2 <<USAGE
usage: ops/build-deb.sh software|web-configurator|controller-firmware --version V [--out DIR]
                        [--firmware-dir DIR --manifest FILE]   (controller-firmware only)
USAGE
}
bad_usage() { echo "build-deb.sh: $*" >&2; usage; exit 2; }
fail() { echo "build-deb.sh: $*" >&2; exit 1; }

KIND="" VERSION="" OUT="$REPO/dist" FIRMWARE_DIR="" MANIFEST=""
parse_args() {
    while (($#)); do
        case "$1" in
            software | web-configurator | controller-firmware)
                [[ -z "$KIND" ]] || bad_usage "more than one package kind: $KIND and $1"
                KIND="$1" ;;
            --version | --out | --firmware-dir | --manifest)
                if (($# < 2)) || [[ -z "$2" ]]; then bad_usage "$1 needs a value"; fi
                case "$1" in
                    --version) VERSION="$2" ;;
                    --out) OUT="$2" ;;
                    --firmware-dir) FIRMWARE_DIR="$2" ;;
                    --manifest) MANIFEST="$2" ;;
                esac
                shift ;;
            -h | --help) usage; exit 0 ;;
            *) bad_usage "unknown argument: $1" ;;
        esac
        shift
    done
    [[ -n "$KIND" ]] || bad_usage "which package? software, web-configurator or controller-firmware"
    [[ -n "$VERSION" ]] || bad_usage "--version is required"
    [[ "$VERSION" =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] ||
        bad_usage "--version $VERSION is not a Debian version (digits first, then [A-Za-z0-9.+~-])"
    if [[ "$KIND" == controller-firmware ]]; then
        [[ -n "$FIRMWARE_DIR" && -n "$MANIFEST" ]] ||
            bad_usage "controller-firmware needs --firmware-dir DIR and --manifest FILE"
    elif [[ -n "$FIRMWARE_DIR$MANIFEST" ]]; then
        bad_usage "--firmware-dir and --manifest are for controller-firmware only"
    fi
    SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || echo 0)}"
    [[ "$SOURCE_DATE_EPOCH" =~ ^[0-9]+$ ]] || bad_usage "SOURCE_DATE_EPOCH must be seconds, got $SOURCE_DATE_EPOCH"
    export SOURCE_DATE_EPOCH
}

# copy_from_repo DEST TAR_ARGS...: the named repo paths (and tar options) into DEST, no clutter.
copy_from_repo() {
    local dest="$1"
    shift
    mkdir -p "$dest"
    tar -C "$REPO" "${CLUTTER[@]}" -cf - "$@" | tar -C "$dest" -xf - || fail "cannot copy $* from $REPO"
}

# write_version_file STAGE: /opt/station/app/VERSION.<kind> holding the deb version; each kind
# has its own name, so the software and web-configurator debs still own no common file.
write_version_file() {
    local stage="$1"
    mkdir -p "$stage/$APP_PREFIX"
    printf '%s\n' "$VERSION" >"$stage/$APP_PREFIX/VERSION.$KIND"
}

stage_software() {
    local stage="$1"
    copy_from_repo "$stage/$APP_PREFIX" --exclude='webapp/*/templates' --exclude=ops/packaging \
        --exclude=ops/build-deb.sh --exclude=ops/test.sh \
        bus workers webapp ops manage.py requirements.txt
    write_version_file "$stage"
    mkdir -p "$stage/$UNIT_PREFIX"
    cp "$REPO"/ops/systemd/*.service "$stage/$UNIT_PREFIX/"
}

stage_web_configurator() {
    local stage="$1" templates=()
    mapfile -t templates < <(cd "$REPO" && find webapp -type d -name templates -not -path '*/templates/*' | sort)
    copy_from_repo "$stage/$APP_PREFIX" hmi_static "${templates[@]}"
    write_version_file "$stage"
}

stage_controller_firmware() {
    local stage="$1" python listing lines bundle file
    [[ -d "$FIRMWARE_DIR" ]] || fail "--firmware-dir $FIRMWARE_DIR is not a folder"
    [[ -f "$MANIFEST" ]] || fail "--manifest $MANIFEST is not a file"
    python="$REPO/.venv/bin/python"
    [[ -x "$python" ]] || python="$(command -v python3)" || fail "no python3 to check the manifest"
    listing="$(cd "$REPO" && "$python" -m workers.fota.bundle "$MANIFEST" "$FIRMWARE_DIR")" ||
        fail "the manifest $MANIFEST cannot be used (see above)"
    mapfile -t lines <<<"$listing"
    [[ "${lines[0]}" == "$VERSION" ]] ||
        fail "the manifest says version ${lines[0]}, the package is --version $VERSION"
    bundle="$stage/$FIRMWARE_PREFIX/$VERSION"
    mkdir -p "$bundle"
    for file in "${lines[@]:1}"; do
        mkdir -p "$bundle/$(dirname "$file")"
        cp "$FIRMWARE_DIR/$file" "$bundle/$file"
    done
    cp "$MANIFEST" "$bundle/manifest.json"
    (cd "$REPO" && "$python" -m workers.fota.bundle "$bundle/manifest.json" >/dev/null) ||
        fail "the staged bundle does not load (see above)"
}

# write_control STAGE PACKAGE_KIND: DEBIAN/control from the template, maintainer scripts.
write_control() {
    local stage="$1" kind="$2" size script
    size="$(find "$stage" -type f -printf '%s\n' | awk '{ kib += int(($1 + 1023) / 1024) } END { print kib + 0 }')"
    mkdir -p "$stage/DEBIAN"
    sed -e "s|@VERSION@|$VERSION|g" -e "s|@MAINTAINER@|$MAINTAINER|g" -e "s|@INSTALLED_SIZE@|$size|g" \
        "$PACKAGING/$kind.control" >"$stage/DEBIAN/control"
    for script in preinst postinst prerm postrm; do
        if [[ -f "$PACKAGING/$kind.$script" ]]; then
            install -m 0755 "$PACKAGING/$kind.$script" "$stage/DEBIAN/$script"
        fi
    done
}

# normalise STAGE: modes u=rwX,go=rX (executables stay executable), mtimes SOURCE_DATE_EPOCH.
normalise() {
    local stage="$1"
    chmod -R u+rwX,go+rX,go-w "$stage"
    find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
}

main() {
    parse_args "$@"
    command -v dpkg-deb >/dev/null || fail "dpkg-deb not found (apt-get install dpkg)"
    mkdir -p "$OUT" || fail "cannot create --out $OUT"
    local stage package
    stage="$(mktemp -d)"
    # shellcheck disable=SC2064  # expand now: $stage is local
    trap "rm -rf '$stage'" EXIT
    "stage_${KIND//-/_}" "$stage/root"
    write_control "$stage/root" "$KIND"
    normalise "$stage/root"
    package="$(sed -n 's/^Package: //p' "$stage/root/DEBIAN/control")"
    local deb
    deb="$(cd "$OUT" && pwd)/${package}_${VERSION}_all.deb"
    dpkg-deb --build --root-owner-group -Zxz "$stage/root" "$deb" >&2 || fail "dpkg-deb failed"
    echo "$deb"
}

main "$@"
