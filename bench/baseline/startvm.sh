#!/usr/bin/env bash
# The baseline Berth is measured against: the original approach, rewritten here as a short bash
# entrypoint that follows the seed README (../shared/seed/) step by step. It is not a product; it exists so that
# bench/startup.py can time the same job done the old way, on the same guest, in the same pod.
#
#   curl        the image into the shared cache (IMG_SOURCE -> IMG_DIR/IMG_TARGET), sha256sum it
#   qemu-img    the "pet" qcow2 overlay named after the hostname, backed by the cached image
#   genisoimage a config-2 config drive from the user-data / meta-data ConfigMap files
#   ip          br0 with VM_GW/30, tap0 in it
#   iptables    1:1 NAT of every port and protocol to VM_IP except TCP 5900 (VNC), SNAT back
#   dnsmasq     DHCP (VM_IP, router VM_GW, the pod's DNS servers, search list and MTU) and DNS
#   exec QEMU   the same machine berth starts (q35, virtio disk and net, config drive as a CD)
#
# Environment (the same names berth reads): IMG_SOURCE IMG_TARGET IMG_CHECKSUM=sha256:<hex>
# VM_IP VM_GW VM_MEMORY VM_CPUS NO_VNC, and for the directories BERTH_IMAGE_DIR BERTH_DISK_DIR
# BERTH_RUNTIME_DIR BERTH_USERDATA BERTH_METADATA (ConfigMap mount folders or files).
set -euo pipefail

IMG_SOURCE=${IMG_SOURCE:?IMG_SOURCE is required}
IMG_TARGET=${IMG_TARGET:-$(basename "$IMG_SOURCE")}
VM_IP=${VM_IP:-192.168.254.2}
VM_GW=${VM_GW:-192.168.254.1}
VM_MEMORY=${VM_MEMORY:-1024M}
VM_CPUS=${VM_CPUS:-1}
images=${BERTH_IMAGE_DIR:-/var/lib/berth/images}
disks=${BERTH_DISK_DIR:-/var/lib/berth/disks}
run=${BERTH_RUNTIME_DIR:-/run/berth}
mkdir -p "$images" "$disks" "$run"

# The pod's facts: its address on eth0, its MTU, DNS servers and search list, its hostname.
pod_ip=$(ip -4 -o addr show dev eth0 | awk '{ split($4, a, "/"); print a[1]; exit }')
mtu=$(cat /sys/class/net/eth0/mtu)
dns=$(awk '$1 == "nameserver" { print $2 }' /etc/resolv.conf | paste -sd, -)
search=$(awk '$1 == "search" { $1 = ""; print substr($0, 2) }' /etc/resolv.conf | tr ' ' ,)
name=$(hostname)

# Image: download once into the cache, verified.
base=$images/$IMG_TARGET
if [[ ! -f $base ]]; then
  if [[ $IMG_SOURCE == /* ]]; then
    cp "$IMG_SOURCE" "$base.part"
  else
    curl -sSfL --retry 5 -o "$base.part" "$IMG_SOURCE"
  fi
  if [[ -n ${IMG_CHECKSUM:-} ]]; then
    echo "${IMG_CHECKSUM#sha256:}  $base.part" | sha256sum -c --quiet
  fi
  mv "$base.part" "$base"
fi

# Pet disk: a qcow2 overlay of the base, created once.
pet=$disks/$name.qcow2
[[ -f $pet ]] || qemu-img create -q -f qcow2 -b "$base" -F qcow2 "$pet"

# Config drive: config-2 layout (what cloud-init's ConfigDrive source reads).
pick() {  # a ConfigMap mount folder: its first key (kubelet's ..data entries skipped); or a file
  if [[ -d $1 ]]; then find -L "$1" -mindepth 1 -maxdepth 1 ! -name '..*' -type f -print -quit; else echo "$1"; fi
}
drive=$run/drive
rm -rf "$drive"
mkdir -p "$drive/openstack/latest"
userdata=$(pick "${BERTH_USERDATA:-/userdata}")
metadata=$(pick "${BERTH_METADATA:-/metadata}")
[[ -f ${userdata:-/nonexistent} ]] && cp "$userdata" "$drive/openstack/latest/user_data"
if [[ -f ${metadata:-/nonexistent} ]]; then
  cp "$metadata" "$drive/openstack/latest/meta_data.json"
else
  echo "{\"uuid\": \"$name\", \"hostname\": \"$name\"}" >"$drive/openstack/latest/meta_data.json"
fi
genisoimage -quiet -o "$run/config-drive.iso" -V config-2 -J -R "$drive"

# Bridge and tap.
ip link add br0 type bridge
ip addr add "$VM_GW/30" dev br0
ip link set br0 mtu "$mtu" up
ip tuntap add dev tap0 mode tap
ip link set tap0 master br0 mtu "$mtu" up

# NAT: everything addressed to the pod goes to the VM, except VNC; the VM's traffic leaves as the
# pod. Forwarding on, MSS clamped to the path.
sysctl -qw net.ipv4.ip_forward=1
iptables -t nat -A PREROUTING -d "$pod_ip" -p tcp --dport 5900 -j RETURN
iptables -t nat -A PREROUTING -d "$pod_ip" -j DNAT --to-destination "$VM_IP"
iptables -t nat -A POSTROUTING -s "$VM_IP" -o eth0 -j SNAT --to-source "$pod_ip"
iptables -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu

# DHCP and DNS for the VM only.
dnsmasq --pid-file="$run/dnsmasq.pid" --interface=br0 --bind-interfaces --except-interface=lo \
  --dhcp-range="$VM_IP,static,255.255.255.252" --dhcp-host="52:54:00:12:34:56,$VM_IP,$name,infinite" \
  --dhcp-option=option:router,"$VM_GW" --dhcp-option=option:dns-server,"$VM_GW" \
  --dhcp-option=option:mtu,"$mtu" ${search:+--dhcp-option=option:domain-search,"$search"} \
  --dhcp-leasefile="$run/dnsmasq.leases" --no-hosts --no-resolv \
  $(tr , '\n' <<<"$dns" | sed 's/^/--server=/')

vnc=(-vga std -display vnc=:0)
[[ -n ${NO_VNC:-} ]] && vnc=(-display none)
exec qemu-system-x86_64 -name berth -machine q35,accel=tcg -cpu max -smp "$VM_CPUS" -m "$VM_MEMORY" \
  -nodefaults -no-user-config -chardev stdio,id=console,signal=off -serial chardev:console \
  -device virtio-rng-pci "${vnc[@]}" \
  -drive "if=none,id=disk0,file=$pet,format=qcow2,cache=writeback,discard=unmap" \
  -device virtio-blk-pci,drive=disk0,bootindex=0 -device virtio-scsi-pci,id=scsi0 \
  -drive "if=none,id=cd0,media=cdrom,readonly=on,format=raw,file=$run/config-drive.iso" \
  -device scsi-cd,bus=scsi0.0,drive=cd0 \
  -netdev tap,id=net0,ifname=tap0,script=no,downscript=no \
  -device "virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56,host_mtu=$mtu"
