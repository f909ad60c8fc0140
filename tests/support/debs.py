"""Real deb packages and a real dpkg database in a temporary folder, for tests of installing.

Tests that install packages must not touch the machine's own dpkg database, and must run without
root: `DpkgRoot` is a throw-away root (`--root`, with the admin folder dpkg expects created first)
driven by the real dpkg; `build_deb` makes a tiny package with dpkg-deb, optionally with a
maintainer script that fails, so dpkg's own error paths run. `SudoRuleDpkg` plays the station's
`sudo -n /usr/bin/dpkg`: only the calls a sudoers rule allows reach the real dpkg.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

# dpkg checks that ldconfig and start-stop-daemon are in PATH; a non-root PATH often lacks sbin.
SBIN_PATH = "/usr/local/sbin:/usr/sbin:/sbin"


def path_with_sbin(path: str | None = None) -> str:
    return f"{path if path is not None else os.environ.get('PATH', '')}:{SBIN_PATH}"


def build_deb(out: Path, package: str, version: str, files: dict[str, bytes] | None = None,
              scripts: dict[str, str] | None = None) -> Path:
    """`<out>/<package>_<version>_all.deb` with `files` (path below / -> bytes) and maintainer
    `scripts` (preinst, postinst, ... -> shell source)."""
    root = out / f"{package}_{version}.tree"
    control = root / "DEBIAN"
    control.mkdir(parents=True)
    (control / "control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: Station Tests <tests@station.invalid>\nDescription: test package\n", encoding="utf-8")
    for name, source in (scripts or {}).items():
        (control / name).write_text(f"#!/bin/sh\n{source}\n", encoding="utf-8")
        (control / name).chmod(0o755)
    for relative, content in (files or {}).items():
        target = root / relative.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    deb = out / f"{package}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)],
                   check=True, capture_output=True)
    return deb


@dataclass(frozen=True)
class DpkgRoot:
    """A private installation root: files land in `root`, the database is `root`/var/lib/dpkg."""

    root: Path
    log: Path

    @classmethod
    def create(cls, folder: Path) -> DpkgRoot:
        admin = folder / "root" / "var" / "lib" / "dpkg"
        for sub in ("info", "updates"):
            (admin / sub).mkdir(parents=True, exist_ok=True)
        for name in ("status", "available"):
            (admin / name).touch()
        return cls(root=folder / "root", log=folder / "dpkg.log")

    @property
    def command(self) -> list[str]:
        """dpkg confined to the root; maintainer scripts run unchrooted (they see $DPKG_ROOT)."""
        return ["dpkg", f"--root={self.root}", "--force-not-root", "--force-script-chrootless",
                f"--log={self.log}"]

    def status(self, package: str) -> dict[str, str]:
        """`dpkg -s` fields of `package` ({} when dpkg does not know it)."""
        result = subprocess.run([*self.command, "-s", package], capture_output=True, text=True, check=False,
                                env=os.environ | {"PATH": path_with_sbin()})
        return dict(line.split(": ", 1) for line in result.stdout.splitlines()
                    if ": " in line and not line.startswith(" "))


@dataclass(frozen=True)
class PausingDpkg:
    """A DPKG command for ops/start.sh: the real dpkg of a DpkgRoot, except that once armed, the
    next `-i` stops before its work and waits (the moment a test cuts the power mid-install)."""

    script: Path
    armed_flag: Path
    paused_flag: Path

    @classmethod
    def create(cls, folder: Path, dpkg: DpkgRoot) -> PausingDpkg:
        folder.mkdir(parents=True, exist_ok=True)
        wrapper = cls(folder / "pausing-dpkg", folder / "pause-next-install", folder / "install-paused")
        wrapper.script.write_text(
            "#!/bin/sh\n"
            f'case " $* " in *" -i "*) if [ -e "{wrapper.armed_flag}" ]; then\n'
            f'    rm -f "{wrapper.armed_flag}"; touch "{wrapper.paused_flag}"; sleep 120\n'
            "fi ;; esac\n"
            f'exec {" ".join(dpkg.command)} "$@"\n', encoding="utf-8")
        wrapper.script.chmod(0o755)
        return wrapper

    def arm(self) -> None:
        self.paused_flag.unlink(missing_ok=True)
        self.armed_flag.touch()

    @property
    def paused(self) -> bool:
        return self.paused_flag.exists()


def sudoers_commands(rule_file: Path, user: str) -> list[str]:
    """The commands a sudoers file lets `user` run as root without a password, as written in it
    (patterns with `*`); a line of any other shape is an error, not skipped."""
    head = f"{user} ALL=(root) NOPASSWD: "
    commands = []
    for line in rule_file.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        if not line.startswith(head):
            raise ValueError(f"{rule_file}: not a '{head}COMMAND' rule: {line}")
        commands.append(line.removeprefix(head))
    return commands


@dataclass(frozen=True)
class SudoRuleDpkg:
    """A DPKG command for ops/start.sh that lets through only the calls a sudoers rule allows, as
    `sudo -n /usr/bin/dpkg` (the unit's DPKG) does on a station, and runs those with the real dpkg
    of a DpkgRoot. Matched as sudo matches arguments: joined by spaces, against each pattern, `*`
    matching anything (slashes and spaces too). A refused call fails like sudo -n does and is noted,
    one command line a line, in `refused_log`."""

    script: Path
    refused_log: Path

    @classmethod
    def create(cls, folder: Path, dpkg: DpkgRoot, allowed: list[str]) -> SudoRuleDpkg:
        folder.mkdir(parents=True, exist_ok=True)
        wrapper = cls(folder / "sudo-dpkg", folder / "refused")
        patterns = " ".join(shlex.quote(pattern) for pattern in allowed)
        wrapper.script.write_text(
            "#!/usr/bin/env bash\n"
            f"allowed=({patterns})\n"
            'call="/usr/bin/dpkg $*"\n'
            'for pattern in "${allowed[@]}"; do\n'
            f'    if [[ "$call" == $pattern ]]; then exec {shlex.join(dpkg.command)} "$@"; fi\n'
            "done\n"
            f'echo "$call" >>{shlex.quote(str(wrapper.refused_log))}\n'
            'echo "sudo: a password is required" >&2\n'
            "exit 1\n", encoding="utf-8")
        wrapper.script.chmod(0o755)
        return wrapper

    @property
    def refused(self) -> list[str]:
        if not self.refused_log.exists():
            return []
        return self.refused_log.read_text(encoding="utf-8").splitlines()
