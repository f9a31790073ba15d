// Package pkgtest tests what a technician installs: the release
// binaries and Debian packages built by scripts/build-release.sh (through
// nfpm), their maintainer scripts run by a real dpkg into a fake root,
// the systemd unit under systemd-analyze verify, the agent's sd_notify
// messages, and scripts/provision-sd.sh against a directory tree
// standing in for a card. It has no code outside its tests; see
// docs/packaging.md for what these tests prove and what they do not.
package pkgtest
