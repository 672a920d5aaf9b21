#!/usr/bin/env bash
# Installs the command-line tools `benchmarks/cli_copy.py` compares `perceptra-storage cp -r`
# with: the AWS CLI (`aws s3 cp --recursive`) and rclone, both from Debian's own packages.
#
#   install_peers.sh        exit codes: 0 both present, 1 apt-get failed, 3 missing and not root
#
# Checks the real binaries in /usr/bin: a pyenv shim named `aws` can sit earlier on PATH and
# fail when run, so `command -v aws` would claim the CLI is there when it is not.
set -euo pipefail

readonly PACKAGES=(awscli rclone)
readonly BINARIES=(/usr/bin/aws /usr/bin/rclone)

die() { echo "install_peers.sh: $*" >&2; exit 1; }

apt_install() { apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"; }

missing=0
for bin in "${BINARIES[@]}"; do
    [[ -x $bin ]] || missing=1
done
[[ $missing == 0 ]] && exit 0

if [[ $(id -u) != 0 ]]; then
    echo "install_peers.sh: aws/rclone are not installed; run as root (installs" \
        "automatically) or install: apt-get install ${PACKAGES[*]}" >&2
    exit 3
fi
aptlog=$(mktemp)
export DEBIAN_FRONTEND=noninteractive
# Retry after refreshing the package lists, which are empty on a fresh image.
if ! apt_install >"$aptlog" 2>&1 && ! { apt-get update -qq && apt_install; } >>"$aptlog" 2>&1
then
    tail -n 20 "$aptlog" >&2
    rm -f "$aptlog"
    die "apt-get install ${PACKAGES[*]} failed"
fi
rm -f "$aptlog"
for bin in "${BINARIES[@]}"; do
    [[ -x $bin ]] || die "$bin still missing after apt-get install ${PACKAGES[*]}"
done
