#!/usr/bin/env bash
# Fetch the kernel that the guest test (tests/integration/guest.sh) boots:
# Debian's cloud kernel, the package linux-image-cloud-amd64 depends on,
# downloaded with `apt-get download` and unpacked with `dpkg-deb -x` into a
# cache folder; nothing is installed on the host.  Keeps vmlinuz and the
# virtio modules the guest needs to see its disk (the cloud kernel builds
# them as modules), in load order.  Idempotent: does nothing when the cache
# is complete.
#
#   scripts/guest-kernel.sh [CACHE]    (default $SILT_GUEST_CACHE, else
#                                       /var/cache/siltfs/guest)
set -euo pipefail
cache=${1:-${SILT_GUEST_CACHE:-/var/cache/siltfs/guest}}
# the modules the guest needs; their dependencies are added (from modinfo)
wanted=(virtio_pci virtio_blk)

[ -s "$cache/vmlinuz" ] && [ -s "$cache/modules/order" ] && exit 0

kpkg() { apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }'; }
pkg=$(kpkg)
if [ -z "$pkg" ]; then
  apt-get update -q >/dev/null
  pkg=$(kpkg)
fi
[ -n "$pkg" ] || { echo "guest-kernel.sh: apt knows no linux-image-cloud-amd64" >&2; exit 1; }

tmp=$(mktemp -d /tmp/siltfs-kernel.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# apt drops privileges to _apt for downloads: let it write there
chown _apt "$tmp" 2>/dev/null || true
(cd "$tmp" && apt-get download -q "$pkg" >/dev/null) || { echo "guest-kernel.sh: apt-get download $pkg failed" >&2; exit 1; }
dpkg-deb -x "$tmp"/*.deb "$tmp/x"
kver=${pkg#linux-image-}
mkdir -p "$cache.new/modules"
cp "$tmp/x/boot/vmlinuz-$kver" "$cache.new/vmlinuz"
# add_module NAME: copy NAME's module after the ones it depends on
declare -A added=()
add_module() {
  local m=$1 f d
  [ -n "${added[$m]:-}" ] && return 0
  added[$m]=1
  f=$(find "$tmp/x/lib/modules/$kver" -name "$m.ko*" | head -n1)
  if [ -z "$f" ]; then
    # built into this kernel: nothing to load
    grep -q "^CONFIG_${m^^}=y" "$tmp/x/boot/config-$kver" && return 0
    echo "guest-kernel.sh: $pkg has no module $m" >&2; exit 1
  fi
  for d in $(modinfo -F depends "$f" | tr ',' ' '); do add_module "$d"; done
  cp "$f" "$cache.new/modules/"
  basename "$f" >> "$cache.new/modules/order"
}
for m in "${wanted[@]}"; do add_module "$m"; done
echo "$pkg" > "$cache.new/package"
rm -rf "$cache"
mkdir -p "$(dirname "$cache")"
mv "$cache.new" "$cache"
echo "guest-kernel.sh: $pkg unpacked into $cache"
