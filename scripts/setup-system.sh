#!/usr/bin/env bash
# System packages the live service and its tests use (Debian / Ubuntu):
#   mosquitto                  the MQTT broker the service's MQTT tests start (and a gateway can use)
#   chromium, chromium-driver  the headless browser the dashboard test drives
# Usage: bash scripts/setup-system.sh    (as root, or with sudo available)
set -euo pipefail
PACKAGES=(mosquitto chromium chromium-driver)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "system packages present: ${PACKAGES[*]}"
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "installed: ${missing[*]}"
