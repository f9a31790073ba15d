#!/usr/bin/env bash
# Installs what the integration tests and the demo use: Debian's mosquitto
# broker (the tests run against the real one and fail without it),
# Debian's nats-server (the chaos suite runs the agent against its MQTT
# interface), Debian's chromium (the status page is tested in it,
# headless), openssl (the SD provisioning test makes certificates) and
# systemd's systemd-analyze (the packaging test verifies the unit). No broker service is left running; tests start their own on
# a free port.
set -euo pipefail

have_mosquitto() { command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; }
have_nats() { command -v nats-server >/dev/null 2>&1 || [ -x /usr/bin/nats-server ] || [ -x /usr/sbin/nats-server ]; }
have_chromium() { command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; }
have_openssl() { command -v openssl >/dev/null 2>&1; }
have_analyze() { command -v systemd-analyze >/dev/null 2>&1; }

missing=()
have_mosquitto || missing+=(mosquitto)
have_nats || missing+=(nats-server)
have_chromium || missing+=(chromium)
have_openssl || missing+=(openssl)
have_analyze || missing+=(systemd)
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		SUDO="sudo -n"
	else
		echo "setup: ${missing[*]} missing and this user cannot install packages;" >&2
		echo "setup: run 'sudo apt-get install ${missing[*]}' (the integration tests need them)" >&2
		exit 1
	fi
fi
echo "setup: installing Debian's ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The packages may enable system services (mosquitto on :1883, nats on
# :4222); the tests do not need them.
if command -v systemctl >/dev/null 2>&1; then
	for svc in mosquitto nats-server; do
		if systemctl is-active --quiet "$svc" 2>/dev/null; then
			$SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
		fi
	done
fi
have_mosquitto && have_nats && have_chromium && have_openssl && have_analyze
