#!/usr/bin/env bash
# Prepares a Raspberry Pi OS card for one terminal, its partitions
# mounted on this machine: the device's config, the broker's CA and the
# terminal's client certificate, and a first-boot service that installs
# the punchclock package, puts them in place and starts the agent.
#
# usage: scripts/provision-sd.sh -boot DIR -root DIR -config FILE -deb FILE
#            [-ca FILE] [-cert FILE -key FILE] [-hostname NAME] [-ssh]
#
#   -boot      the card's boot (FAT) partition: must hold config.txt
#   -root      the card's root partition: must hold etc/os-release
#   -config    the device's punchclock.toml; with -ca, -cert or -key its
#              ca_file, cert_file, key_file must name the paths they are
#              installed at: /etc/punchclock/tls/{ca,client,client-key}.pem
#   -deb       the punchclock .deb of the card's architecture (make deb)
#   -hostname  the Pi's host name (default: the config's device_id)
#   -ssh       enable the SSH server at first boot (boot partition "ssh")
#
# Nothing secret is written to the boot partition (FAT: readable by
# anyone holding the card, no permissions): config, certificates and the
# package are staged on the root partition in /var/lib/punchclock-firstboot
# (0700 root), which the first boot empties. See docs/packaging.md.
set -euo pipefail

die() {
	echo "provision-sd: $*" >&2
	exit 1
}
usage() {
	sed -n '/^# usage:/,/^$/p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

boot= root= config= deb= ca= cert= key= host= ssh=false
while [ $# -gt 0 ]; do
	case "$1" in
	-boot | -root | -config | -deb | -ca | -cert | -key | -hostname)
		[ $# -ge 2 ] || die "$1 needs a value"
		case "$1" in
		-boot) boot=$2 ;;
		-root) root=$2 ;;
		-config) config=$2 ;;
		-deb) deb=$2 ;;
		-ca) ca=$2 ;;
		-cert) cert=$2 ;;
		-key) key=$2 ;;
		-hostname) host=$2 ;;
		esac
		shift 2
		;;
	-ssh)
		ssh=true
		shift
		;;
	-h | -help | --help) usage ;;
	*) die "unknown argument $1 (see -help)" ;;
	esac
done
[ -n "$boot" ] && [ -n "$root" ] && [ -n "$config" ] && [ -n "$deb" ] || usage

steps=6
step=0
say() {
	step=$((step + 1))
	printf '[%d/%d] %s\n' "$step" "$steps" "$*"
}

# copy SRC DST MODE: a block at a time with its progress (a card takes
# seconds per MiB), then flushed and read back against the source.
copy() {
	local src=$1 dst=$2 mode=$3 size blocks i
	size=$(stat -c %s "$src")
	blocks=$(((size + 1048575) / 1048576))
	install -m "$mode" /dev/null "$dst"
	for ((i = 0; i < blocks; i++)); do
		dd if="$src" of="$dst" bs=1M skip=$i seek=$i count=1 conv=notrunc status=none
		printf '      %s: %3d%% (%d of %d MiB)\n' "$(basename "$dst")" $(((i + 1) * 100 / blocks)) $((i + 1)) "$blocks"
	done
	sync "$dst"
	cmp -s "$src" "$dst" || die "$dst: the copy differs from $src (a failing card?)"
}

say "checking the card and the files"
[ -f "$boot/config.txt" ] || die "-boot $boot: no config.txt, not a Raspberry Pi boot partition"
[ -f "$root/etc/os-release" ] || die "-root $root: no etc/os-release, not a root partition"
[ -f "$config" ] || die "-config $config: no such file"
[ -f "$deb" ] || die "-deb $deb: no such file"
if command -v dpkg-deb >/dev/null; then
	[ "$(dpkg-deb -f "$deb" Package 2>/dev/null)" = punchclock ] || die "-deb $deb: not a punchclock package"
fi
# The value of a top-level or [mqtt] string key: enough for these
# checks, which only compare paths (the agent parses the real thing).
value() {
	sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\"\([^\"]*\)\".*/\1/p" "$config" | head -1
}
id=$(value device_id)
[ -n "$id" ] || die "-config $config: no device_id"
if { [ -n "$cert" ] && [ -z "$key" ]; } || { [ -z "$cert" ] && [ -n "$key" ]; }; then
	die "-cert and -key go together"
fi
tls=()
check_pem() { # FLAG FILE KIND CONFIGKEY NAME
	[ -f "$2" ] || die "$1 $2: no such file"
	grep -q -- "^-----BEGIN $3-----" "$2" || die "$1 $2: no PEM $3"
	local want=/etc/punchclock/tls/$5
	[ "$(value "$4")" = "$want" ] || die "-config $config: $4 must be \"$want\" for $1"
	tls+=("$2:$5")
}
[ -z "$ca" ] || check_pem -ca "$ca" CERTIFICATE ca_file ca.pem
[ -z "$cert" ] || check_pem -cert "$cert" CERTIFICATE cert_file client.pem
[ -z "$key" ] || check_pem -key "$key" "\(RSA \|EC \)\{0,1\}PRIVATE KEY" key_file client-key.pem
if [ -n "$cert" ] && command -v openssl >/dev/null; then
	[ "$(openssl x509 -in "$cert" -noout -pubkey)" = "$(openssl pkey -in "$key" -pubout 2>/dev/null)" ] ||
		die "-key $key does not belong to -cert $cert"
fi
host=${host:-$id}
[[ $host =~ ^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$ ]] || die "host name \"$host\": letters, digits and inner '-' only (-hostname)"

stage=$root/var/lib/punchclock-firstboot
say "staging the config and certificates in ${stage#"$root"}"
rm -rf "$stage"
install -d -m 0700 "$stage" "$stage/tls"
install -m 0600 "$config" "$stage/punchclock.toml"
for t in "${tls[@]}"; do
	install -m 0600 "${t%%:*}" "$stage/tls/${t#*:}"
done

say "copying the package"
copy "$deb" "$stage/punchclock.deb" 0600

say "installing the first-boot service"
cat >"$stage/install.sh" <<'SCRIPT'
#!/bin/sh
# First boot of a provisioned punchclock card (scripts/provision-sd.sh):
# put the config and certificates in place, install the package (which
# creates the punchclock user and starts the agent), then remove
# itself. ROOT, empty on the Pi, lets a test act on a tree instead.
set -eu
ROOT=${ROOT:-}
stage=$ROOT/var/lib/punchclock-firstboot
install -d -m 0750 "$ROOT/etc/punchclock"
install -m 0640 "$stage/punchclock.toml" "$ROOT/etc/punchclock/punchclock.toml"
if [ -n "$(ls "$stage/tls")" ]; then
	install -d -m 0750 "$ROOT/etc/punchclock/tls"
	install -m 0640 "$stage"/tls/* "$ROOT/etc/punchclock/tls/"
fi
# The config is already there: keep it (postinst gives it to group
# punchclock), do not ask.
if [ -n "$ROOT" ]; then
	dpkg --root="$ROOT" --force-script-chrootless --log=/dev/null --force-confold --force-confdef -i "$stage/punchclock.deb"
else
	dpkg --force-confold --force-confdef -i "$stage/punchclock.deb"
fi
gid=$(awk -F: '$1 == "punchclock" { print $3 }' "$ROOT/etc/group")
if [ -d "$ROOT/etc/punchclock/tls" ]; then
	chown -R "0:$gid" "$ROOT/etc/punchclock/tls"
fi
rm -f "$ROOT/etc/systemd/system/multi-user.target.wants/punchclock-firstboot.service"
rm -rf "$stage"
if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
	# The agent may have started before its certificates were readable.
	systemctl restart --no-block punchclock.service
fi
SCRIPT
chmod 0700 "$stage/install.sh"
install -d "$root/etc/systemd/system/multi-user.target.wants"
cat >"$root/etc/systemd/system/punchclock-firstboot.service" <<'UNIT'
# Installs punchclock at the first boot of a provisioned card
# (scripts/provision-sd.sh); removes itself when done.
[Unit]
Description=punchclock first-boot install
ConditionPathExists=/var/lib/punchclock-firstboot/install.sh
After=local-fs.target time-sync.target

[Service]
Type=oneshot
ExecStart=/var/lib/punchclock-firstboot/install.sh

[Install]
WantedBy=multi-user.target
UNIT
ln -sfn /etc/systemd/system/punchclock-firstboot.service \
	"$root/etc/systemd/system/multi-user.target.wants/punchclock-firstboot.service"

say "naming the Pi $host"
echo "$host" >"$root/etc/hostname"
if [ -f "$root/etc/hosts" ] && grep -q '^127\.0\.1\.1' "$root/etc/hosts"; then
	sed -i "s/^127\.0\.1\.1.*/127.0.1.1\t$host/" "$root/etc/hosts"
else
	printf '127.0.1.1\t%s\n' "$host" >>"$root/etc/hosts"
fi

say "finishing the boot partition"
if $ssh; then
	: >"$boot/ssh"
fi
sync
echo "card ready for $id: first boot installs punchclock ($(basename "$deb"))"
