"""Debian's Chromium and its WebDriver, for the browser tests.

Nothing is downloaded at run time: the browser comes from Debian's ``chromium`` and
``chromium-driver`` packages, installed here with apt-get when the tests run as
root and they are missing (as ``ceph_rgw.sh`` installs Ceph), else reported with
the command that installs them.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from tests.servers.common import ServerUnavailable

PACKAGES = ("chromium", "chromium-driver")
BROWSER = "/usr/bin/chromium"
DRIVER = "/usr/bin/chromedriver"


def _installed() -> bool:
    return os.access(BROWSER, os.X_OK) and os.access(DRIVER, os.X_OK)


def ensure_chromium() -> tuple[str, str]:
    """The paths of Debian's chromium and chromedriver, installing them if needed."""
    if _installed():
        return BROWSER, DRIVER
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ServerUnavailable(f"Chromium is not installed; run: apt-get install "
                                f"{' '.join(PACKAGES)}")
    # The controller may be installing Ceph's packages at the same moment: wait for
    # dpkg's lock instead of failing on it.
    command = ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
               "-o", "DPkg::Lock::Timeout=600", *PACKAGES]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:  # a stale package index: refresh it once
        subprocess.run(["apt-get", "update", "-qq", "-o", "DPkg::Lock::Timeout=600"],
                       capture_output=True, env=env, check=False)
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0 or not _installed():
        raise ServerUnavailable(f"apt-get install {' '.join(PACKAGES)} failed: "
                                f"{result.stderr[-500:]}")
    return BROWSER, DRIVER
