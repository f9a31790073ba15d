#!/usr/bin/env bash
# Builds the release binaries, stripped, static and stamped with the
# version and commit (punchclock version prints both), into dist/:
#   dist/punchclock-linux-armv6   Raspberry Pi Zero/1 and up (GOARM=6)
#   dist/punchclock-linux-armv7   Raspberry Pi 2 and up, 32-bit (GOARM=7)
#   dist/punchclock-linux-arm64   Raspberry Pi 3/4/5, 64-bit OS
#   dist/punchclock-linux-amd64   PCs, CI, the simulator
#   dist/SHA256SUMS
# and fails when the armv6 binary reaches 10 MiB. With -deb it also
# builds the Debian packages with nfpm (packaging/nfpm.yaml):
#   dist/punchclock_<version>_{armhf,arm64,amd64}.deb
# armhf carries the armv6 binary: Raspberry Pi OS's armhf is ARMv6.
#
# usage: scripts/build-release.sh [-deb] [VERSION]   (make release, make deb)
# DIST, when set, replaces dist/ as the output directory.
# VERSION defaults to git describe; the package version is VERSION
# without a leading v when it starts with a number and a dot (a release
# tag), else 0.0.0~g<commit>: dpkg requires a leading digit, and a bare
# commit hash would sort at random.
set -euo pipefail
cd "$(dirname "$0")/.."

deb=false
if [ "${1:-}" = -deb ]; then
	deb=true
	shift
fi
version=${1:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	commit="$commit-dirty"
fi
go=${GO:-go}
nfpm=${NFPM:-"$go run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2"}
max=$((10 * 1024 * 1024))
dist=${DIST:-dist} # where everything goes (tests set it)
mkdir -p "$dist"

build() { # GOARCH GOARM suffix
	local out="$dist/punchclock-linux-$3"
	CGO_ENABLED=0 GOOS=linux GOARCH=$1 GOARM=$2 \
		"$go" build -trimpath -ldflags "-s -w -X main.version=$version -X main.commit=$commit" \
		-o "$out" ./cmd/punchclock
	printf '%s %d bytes\n' "$out" "$(stat -c %s "$out")"
}

build arm 6 armv6
build arm 7 armv7
build arm64 "" arm64
build amd64 "" amd64
size=$(stat -c %s "$dist/punchclock-linux-armv6")
if [ "$size" -ge "$max" ]; then
	echo "build-release: $dist/punchclock-linux-armv6 is $size bytes, the limit is $max (10 MiB)" >&2
	exit 1
fi
(cd "$dist" && sha256sum punchclock-linux-* >SHA256SUMS)

if ! $deb; then
	exit 0
fi
v=${version#v}
if [[ $v =~ ^[0-9]+\.[0-9]+ ]]; then
	v=${v//-/+} # 1.2.0-3-gabc → 1.2.0+3+gabc: no Debian revision
else
	v="0.0.0~g${commit//-/.}"
fi
# nfpm reads the files to package relative to its working directory:
# a stage holding this architecture's binary and the repository's
# packaging/ and config/.
stage=$(realpath "$dist")/.stage
out_dir=$(realpath "$dist")
rm -rf "$stage"
mkdir -p "$stage"
ln -s "$PWD/packaging" "$PWD/config" "$stage/"
for pair in arm6:armv6:armhf arm64:arm64:arm64 amd64:amd64:amd64; do
	IFS=: read -r narch bin darch <<<"$pair"
	out="$out_dir/punchclock_${v}_${darch}.deb"
	rm -f "$out"
	cp "$dist/punchclock-linux-$bin" "$stage/punchclock"
	(cd "$stage" && NFPM_ARCH=$narch DEB_VERSION=$v $nfpm package --config packaging/nfpm.yaml --packager deb --target "$out" >/dev/null)
	printf '%s %d bytes\n' "$dist/${out##*/}" "$(stat -c %s "$out")"
done
rm -rf "$stage"
