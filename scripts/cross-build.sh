#!/usr/bin/env bash
# Cross-builds the agent for the terminals, stripped and static:
#   bin/punchclock-linux-armv6   Raspberry Pi Zero/1 and up (32-bit, GOARM=6)
#   bin/punchclock-linux-arm64   Raspberry Pi 3/4/5 with a 64-bit OS
# usage: scripts/cross-build.sh [VERSION]   (make cross)
set -euo pipefail
cd "$(dirname "$0")/.."

version=${1:-$(git describe --always --dirty 2>/dev/null || echo dev)}
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
go=${GO:-go}
mkdir -p bin

build() { # GOARCH GOARM suffix
	local out="bin/punchclock-linux-$3"
	CGO_ENABLED=0 GOOS=linux GOARCH=$1 GOARM=$2 \
		"$go" build -trimpath -ldflags "-s -w -X main.version=$version -X main.commit=$commit" -o "$out" ./cmd/punchclock
	printf '%s %d bytes\n' "$out" "$(stat -c %s "$out")"
}

build arm 6 armv6
build arm64 "" arm64
