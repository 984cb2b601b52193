#!/usr/bin/env bash
# System packages the live service and its tests use (Debian / Ubuntu):
#   mosquitto                  the MQTT broker the service's MQTT tests start (and a gateway can use)
#   chromium, chromium-driver  the headless browser the dashboard test drives
#   rabbitmq-server            the broker several serve instances share (MQTT and consistent-hash plugins ship with it)
#   postgresql                 the store several serve instances share (the tests start a private cluster of their own)
# Usage: bash scripts/setup-system.sh    (as root, or with sudo available)
set -euo pipefail
PACKAGES=(mosquitto chromium chromium-driver rabbitmq-server postgresql)
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
