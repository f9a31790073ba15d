#!/usr/bin/env bash
# Installs what the integration tests and the demo use: Debian's mosquitto
# broker (the tests run against the real one and fail without it). The
# broker service is not started; tests start their own on a free port.
set -euo pipefail

if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
	exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		SUDO="sudo -n"
	else
		echo "setup: mosquitto is missing and this user cannot install packages;" >&2
		echo "setup: run 'sudo apt-get install mosquitto' (the integration tests need it)" >&2
		exit 1
	fi
fi
echo "setup: installing Debian's mosquitto" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends mosquitto >/dev/null
# The package enables a system broker on :1883; the tests do not need it.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mosquitto 2>/dev/null; then
	$SUDO systemctl disable --now mosquitto >/dev/null 2>&1 || true
fi
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]
