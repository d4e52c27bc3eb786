#!/usr/bin/env bash
# Install the Debian packages the integration tests drive, when any of them is missing.
# Runs before the test suite; on a machine that has them all it only checks and returns.
set -euo pipefail

declare -A package_of=(
  [storescu]=dcmtk
  [tcpdump]=tcpdump
  [tshark]=tshark
  [tcprewrite]=tcpreplay
  [openssl]=openssl
  [curl]=curl
  [rclone]=rclone
  [smbd]=samba
  [smbclient]=smbclient
  [ip]=iproute2
  [rsyslogd]=rsyslog
)

missing=()
for tool in "${!package_of[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$tool" >/dev/null 2>&1 ||
    missing+=("${package_of[$tool]}")
done
python3 -c 'import pydicom' >/dev/null 2>&1 || /usr/bin/python3 -c 'import pydicom' >/dev/null 2>&1 ||
  missing+=(python3-pydicom)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "test-deps: missing Debian packages: ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi

echo "test-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
