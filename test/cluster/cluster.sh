#!/usr/bin/env bash
# A real single-node Kubernetes cluster on this machine, from locally built binaries, for Berth's
# end-to-end tests (see test/cluster/README.md).
#
#   test/cluster/cluster.sh up             start it (tearing down any leftover first), wait for the
#                                          node to be Ready and the default ServiceAccount to exist;
#                                          imports every OCI archive in BERTH_CLUSTER_IMAGES
#   test/cluster/cluster.sh down           stop and remove everything; fails, saying what is left,
#                                          if a process, mount or namespace of the cluster remains
#   test/cluster/cluster.sh status         daemons, node, pods; exit 0 only when all is up and Ready
#   test/cluster/cluster.sh kubectl ARGS   kubectl with the admin kubeconfig, in the node's netns
#   test/cluster/cluster.sh helm ARGS      the same for helm (scripts/install-helm.sh's binary)
#   test/cluster/cluster.sh ctr ARGS       ctr against the cluster's containerd, namespace k8s.io
#   test/cluster/cluster.sh env            the export lines a caller needs (eval "$(... env)")
#   test/cluster/cluster.sh smoke          a check of a running cluster: a privileged pod from the
#                                          berth image to Completed with a 10.88.x.x IP, a pod IP
#                                          reached from the node, and kubectl port-forward
#
# Layout
#   network namespace berth-k8s: every daemon runs in it (nsenter --net, not `ip netns exec`, which
#     would also unshare the mount namespace and hide kubelet's volume mounts from containerd);
#     node IP 10.250.0.1/32 on node0 (a veth whose peer is in there too: this kernel has no dummy
#     devices); kube-proxy's and CNI's rules and all pod veths live there and vanish with it.
#     Pods: ptp + host-local, 10.88.0.0/16, routed via the node. Services: 10.96.0.0/24
#     (kubernetes = 10.96.0.1), kube-proxy in iptables mode. Dual-stack by default: the node
#     also has fd00:10:250::1, pods fd00:10:88::/64, Services fd00:10:96::/112.
#   /var/lib/berth-cluster   state: pki/, kubeconfigs, configs, logs/<daemon>.log, kubelet/ (root
#                            dir), etcd/ and containerd/root/ (both tmpfs mounts)
#   /run/berth-cluster       sockets, pid files, containerd state, runc state
#   /var/cache/berth/cluster pause-<key>.oci.tar (the sandbox image, built from pause.c); kept
#   cgroups: /berth-cluster in every hierarchy; the daemons in pids:/berth-cluster/daemons (so
#     `down` finds every process they started, shims included), pods under
#     /berth-cluster/kubepods (kubelet's cgroupRoot)
#
# Environment
#   BERTH_CLUSTER_IMAGES            space-separated OCI archives to import (containerd, ns k8s.io)
#   BERTH_CLUSTER_TIMEOUT           seconds `up` waits for the node to become Ready (default 180)
#   BERTH_CLUSTER_CONTAINERD_TMPFS  size limit of containerd's tmpfs root (default 8g)
#   BERTH_CLUSTER_ETCD_TMPFS        size limit of etcd's tmpfs data dir (default 1g)
#   KUBE_PROXY_MODE                 iptables (default) or nftables
#   BERTH_CLUSTER_DUALSTACK         1 (default): IPv4 and IPv6 for the node, the pods and Services;
#                                   0: IPv4 only
set -Eeuo pipefail
shopt -s inherit_errexit nullglob
# No silent exits under errexit: say where.
trap 'echo "cluster: ERROR: exit $? at line $LINENO: $BASH_COMMAND" >&2' ERR

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

NETNS=berth-k8s
NETNS_PATH=/run/netns/$NETNS
NODE_IP=10.250.0.1
NODE_NAME=berth-node
POD_CIDR=10.88.0.0/16
SERVICE_CIDR=10.96.0.0/24
SERVICE_IP=10.96.0.1
# Dual-stack (BERTH_CLUSTER_DUALSTACK, default 1): ULAs beside the IPv4 ranges, IPv4 first (the
# primary family: status.podIP and a Service's clusterIP stay IPv4). The pods' /64 must not overlap
# berth's own VM_IP6 default, fd62:6572:7468::/64.
DUALSTACK=${BERTH_CLUSTER_DUALSTACK:-1}
[[ $DUALSTACK == 0 || $DUALSTACK == 1 ]] || { echo "cluster: BERTH_CLUSTER_DUALSTACK must be 0 or 1" >&2; exit 2; }
NODE_IP6=fd00:10:250::1
POD_CIDR6=fd00:10:88::/64
SERVICE_CIDR6=fd00:10:96::/112
if ((DUALSTACK)); then
  NODE_IPS=$NODE_IP,$NODE_IP6
  POD_CIDRS=$POD_CIDR,$POD_CIDR6
  SERVICE_CIDRS=$SERVICE_CIDR,$SERVICE_CIDR6
else
  NODE_IPS=$NODE_IP
  POD_CIDRS=$POD_CIDR
  SERVICE_CIDRS=$SERVICE_CIDR
fi
CLUSTER_DOMAIN=cluster.local
CNI_NETWORK=berth-pod-net

# Fixed on purpose: `down` deletes these trees.
STATE=/var/lib/berth-cluster
RUN=/run/berth-cluster
CACHE=/var/cache/berth/cluster
LOGS=$STATE/logs
PKI=$STATE/pki
CG_NAME=berth-cluster
CTRD_SOCK=$RUN/containerd/containerd.sock
ADMIN_KUBECONFIG=$STATE/admin.kubeconfig
CNI_BIN=/usr/lib/cni
# kubectl's and helm's discovery/HTTP cache (else ~/.kube/cache)
export KUBECACHEDIR=$STATE/kube-cache
# Host paths outside our trees that the daemons write to whatever their configuration says:
# kubelet's symlinks to container logs (/var/log/containers), its device-plugin socket and
# checkpoint (/var/lib/kubelet/device-plugins, fixed whatever --root-dir is), libcni's cache
# (/var/lib/cni), containerd 1.6's shim sockets (/run/containerd/s). `down` removes what of them
# is the cluster's, and those of these directories that `up` found missing once they are empty.
HOST_PATHS=(/var/log/containers /var/lib/kubelet /var/lib/cni /run/containerd)
# Kernel settings kubelet changes globally (protectKernelDefaults=false); restored by `down`.
KUBELET_SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
DAEMONS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy
  coredns)

LOG_PREFIX=cluster
# shellcheck source=lib.sh
. "$here/lib.sh"  # log, die, now, secs

in_ns() { nsenter --net="$NETNS_PATH" -- "$@"; }

# Sets KUBE_BIN: the bin dir `up` recorded, else build-kube.sh's (building when missing, if BUILD=1).
KUBE_BIN=
resolve_kube_bin() {
  local build=${1:-0}
  [[ -z $KUBE_BIN ]] || return 0
  if [[ -s $STATE/kube-bin && -x $(cat "$STATE/kube-bin")/kubectl ]]; then
    KUBE_BIN=$(cat "$STATE/kube-bin")
  elif "$here/build-kube.sh" --check >/dev/null 2>&1; then
    KUBE_BIN=$("$here/build-kube.sh" 2>/dev/null | tail -n1)
  elif ((build)); then
    log "Kubernetes binaries missing; building them (test/cluster/build-kube.sh, ~16 min cold)"
    KUBE_BIN=$("$here/build-kube.sh" | tail -n1)
  else
    return 1
  fi
  [[ -x $KUBE_BIN/kubelet ]] || die "build-kube.sh gave no usable bin dir ($KUBE_BIN)"
}
helm_bin() { "$root/scripts/install-helm.sh"; }

# ---------------------------------------------------------------------------------------------
# Timing
T0=
STEP_T=
timing=()
record_step() { # name start end [note]: a step that ran alongside others
  log "[$1] $(secs "$2" "$3")s (done at $(secs "$T0" "$3")s)${4:+ - $4}"
  timing+=("$(printf '%-20s %7ss  at %7ss  %s' "$1" "$(secs "$2" "$3")" "$(secs "$T0" "$3")" "${4:-}")")
}
done_step() { # name [note]
  local t d
  t=$(now)
  d=$(secs "$STEP_T" "$t")
  log "[$1] ${d}s (at $(secs "$T0" "$t")s)${2:+ - $2}"
  timing+=("$(printf '%-20s %7ss  at %7ss  %s' "$1" "$d" "$(secs "$T0" "$t")" "${2:-}")")
  STEP_T=$t
}

# ---------------------------------------------------------------------------------------------
# Daemons: started detached (setsid), in the node's netns, in pids:/berth-cluster/daemons, output
# to $LOGS/<name>.log; $RUN/<name>.pid holds "PID EXE".
daemon_cgroup=/sys/fs/cgroup/pids/$CG_NAME/daemons
start_daemon() { # name binary args...
  local name=$1 bin=$2 pid
  shift 2
  (
    # Nothing of the caller's may stay open in a daemon (a pipe held open would hang the caller).
    local fd
    for fd in "/proc/$BASHPID/fd"/*; do
      fd=${fd##*/}
      if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null; fi
    done
    exec </dev/null >>"$LOGS/$name.log" 2>&1
    echo "$BASHPID" >"$daemon_cgroup/cgroup.procs"
    exec setsid nsenter --net="$NETNS_PATH" -- "$bin" "$@"
  ) &
  pid=$!
  echo "$pid $(readlink -f "$bin")" >"$RUN/$name.pid"
  started+=("$name")
}
started=()
daemon_pid() { # name -> pid if running and still that binary
  local f=$RUN/$1.pid pid exe
  [[ -s $f ]] || return 1
  read -r pid exe <"$f" || return 1
  [[ -n $pid && -d /proc/$pid ]] || return 1
  # A process that has not reached exec yet (subshell, setsid, nsenter) counts as ours too.
  local cur
  cur=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  case $cur in
    "$exe" | */bash | */setsid | */nsenter) echo "$pid" ;;
    *) return 1 ;;
  esac
}
log_tail() { # name [lines]
  local f=$LOGS/$1.log
  [[ -f $f ]] || return 0
  echo "----- last ${2:-40} lines of $f -----" >&2
  tail -n "${2:-40}" "$f" >&2
  echo "-----" >&2
}
check_daemons() {
  local n
  for n in "${started[@]}"; do
    if ! daemon_pid "$n" >/dev/null; then
      log_tail "$n" 60
      die "$n exited during startup (log above: $LOGS/$n.log); the rest is left running for inspection - 'cluster.sh down' removes it"
    fi
  done
}
# wait_until DESCRIPTION TIMEOUT_S COMMAND... : poll (daemons checked in between)
wait_until() {
  local what=$1 timeout=$2 deadline
  shift 2
  deadline=$(($(date +%s) + timeout))
  until "$@" >/dev/null 2>&1; do
    check_daemons
    if (($(date +%s) >= deadline)); then
      local n
      for n in "${started[@]}"; do log_tail "$n" 15; done
      die "timed out after ${timeout}s waiting for $what (log tails above)"
    fi
    sleep 0.25
  done
}

# ---------------------------------------------------------------------------------------------
# PKI (EC P-256)
openssl_req_cnf() {
  cat <<'EOF'
[req]
distinguished_name = dn
[dn]
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, digitalSignature, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
}
gen_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; chmod 600 "$1"; }
# issue NAME SUBJECT EXTENDED_KEY_USAGE [SAN]
issue() {
  local name=$1 subj=$2 eku=$3 san=${4:-}
  gen_key "$PKI/$name.key"
  openssl req -new -config "$PKI/req.cnf" -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr"
  {
    echo "[ext]"
    echo "basicConstraints = critical, CA:FALSE"
    echo "keyUsage = critical, digitalSignature, keyEncipherment"
    echo "extendedKeyUsage = $eku"
    echo "authorityKeyIdentifier = keyid"
    [[ -z $san ]] || echo "subjectAltName = $san"
  } >"$PKI/$name.ext"
  local ca=${CA_NAME:-ca}
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 365 -sha256 \
    -extfile "$PKI/$name.ext" -extensions ext -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}
make_pki() {
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  openssl_req_cnf >"$PKI/req.cnf"
  gen_key "$PKI/ca.key"
  openssl req -x509 -new -config "$PKI/req.cnf" -extensions v3_ca -key "$PKI/ca.key" \
    -subj "/CN=berth-cluster-ca" -days 365 -sha256 -out "$PKI/ca.crt"
  issue apiserver "/CN=kube-apiserver" serverAuth \
    "IP:$SERVICE_IP, IP:$NODE_IP, IP:127.0.0.1, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.$CLUSTER_DOMAIN, DNS:localhost"
  issue admin "/O=system:masters/CN=berth-admin" clientAuth
  issue kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
  issue kubelet-serving "/CN=$NODE_NAME" serverAuth "DNS:$NODE_NAME, IP:$NODE_IP, IP:127.0.0.1"
  issue controller-manager "/CN=system:kube-controller-manager" clientAuth
  issue scheduler "/CN=system:kube-scheduler" clientAuth
  issue kube-proxy "/CN=system:kube-proxy" clientAuth
  issue apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  # Front proxy (API aggregation), as kubeadm sets it up: its own CA, trusted only for request
  # headers from the apiserver's proxy client certificate.
  gen_key "$PKI/front-proxy-ca.key"
  openssl req -x509 -new -config "$PKI/req.cnf" -extensions v3_ca -key "$PKI/front-proxy-ca.key" \
    -subj "/CN=berth-front-proxy-ca" -days 365 -sha256 -out "$PKI/front-proxy-ca.crt"
  CA_NAME=front-proxy-ca issue front-proxy-client "/CN=front-proxy-client" clientAuth
  gen_key "$PKI/sa.key"
  openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  local n
  for n in admin kubelet controller-manager scheduler kube-proxy; do
    write_kubeconfig "$STATE/$n.kubeconfig" "$n"
  done
}
write_kubeconfig() { # file cert-name
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: berth
  cluster:
    server: https://$NODE_IP:6443
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$2.crt")
    client-key-data: $(base64 -w0 "$PKI/$2.key")
contexts:
- name: berth
  context:
    cluster: berth
    user: $2
current-context: berth
EOF
  chmod 600 "$1"
}

# ---------------------------------------------------------------------------------------------
# The sandbox ("pause") image: pause.c, static, as an OCI archive made with buildah (vfs storage in
# a temporary directory, so nothing is mounted and nothing stays behind). Cached per source.
PAUSE_RECIPE=1
pause_image() { # sets PAUSE_ARCHIVE, PAUSE_REF
  local key
  key=$({ echo "recipe $PAUSE_RECIPE $(gcc -dumpfullversion 2>/dev/null)"; cat "$here/pause.c"; } | sha256sum | cut -c1-12)
  PAUSE_REF=localhost/berth-pause:$key
  PAUSE_ARCHIVE=$CACHE/pause-$key.oci.tar
  [[ -s $PAUSE_ARCHIVE ]] && { PAUSE_NOTE="cached $(basename "$PAUSE_ARCHIVE")"; return 0; }
  command -v buildah >/dev/null || die "buildah missing (apt-get install buildah)"
  mkdir -p "$CACHE"
  local tmp c
  tmp=$(mktemp -d /var/tmp/berth-pause.XXXXXX)
  local B=(buildah --root "$tmp/storage" --runroot "$tmp/run" --storage-driver vfs)
  gcc -static -Os -s -Wall -Wextra -Werror -o "$tmp/pause" "$here/pause.c"
  "$tmp/pause" --version >/dev/null
  c=$("${B[@]}" from --quiet scratch)
  "${B[@]}" copy --quiet "$c" "$tmp/pause" /pause >/dev/null
  "${B[@]}" config --os linux --arch amd64 --entrypoint '["/pause"]' --user 65535:65535 \
    --stop-signal SIGTERM "$c"
  "${B[@]}" commit --quiet --format oci --rm "$c" "$PAUSE_REF" >/dev/null
  "${B[@]}" push --quiet "$PAUSE_REF" "oci-archive:$tmp/pause.oci.tar:$PAUSE_REF" >&2
  mv -f "$tmp/pause.oci.tar" "$PAUSE_ARCHIVE"
  findmnt -rn -o TARGET | awk -v d="$tmp" 'index($0, d) == 1' | sort -r | xargs -r -n1 umount -l
  rm -rf --one-file-system "$tmp"
  find "$CACHE" -maxdepth 1 -name 'pause-*.oci.tar' ! -name "$(basename "$PAUSE_ARCHIVE")" -delete
  PAUSE_NOTE="built $(basename "$PAUSE_ARCHIVE")"
}

# ---------------------------------------------------------------------------------------------
# Config files
write_configs() {
  local bin=$1
  mkdir -p "$STATE/cni/net.d" "$STATE/cni/ipam" "$STATE/containerd" "$STATE/kubelet" "$STATE/pod-logs"
  # host-local: one range set per family; ptp gives the pod its address (a /32, or a /64 with a
  # route to the gateway for IPv6), the gateway on the host-side veth and a host route per pod.
  local ranges='[{ "subnet": "'$POD_CIDR'" }]' routes='{ "dst": "0.0.0.0/0" }'
  if ((DUALSTACK)); then
    ranges+=', [{ "subnet": "'$POD_CIDR6'" }]'
    routes+=', { "dst": "::/0" }'
  fi
  cat >"$STATE/cni/net.d/10-$CNI_NETWORK.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$CNI_NETWORK",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "mtu": 1500,
      "ipam": {
        "type": "host-local",
        "ranges": [$ranges],
        "routes": [$routes],
        "dataDir": "$STATE/cni/ipam"
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF
  # containerd 1.6 (Debian 12). Loopback is set up by the CRI plugin itself (with $CNI_BIN/loopback).
  cat >"$STATE/containerd/config.toml" <<EOF
version = 2
root = "$STATE/containerd/root"
state = "$RUN/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "$CTRD_SOCK"

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$STATE/containerd/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "$PAUSE_REF"
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    enable_selinux = false
    # No CAP_SYS_RESOURCE here: runc cannot set the negative oom_score_adj kubelet asks for (-998
    # for sandboxes, -997 for Guaranteed pods); cap them at containerd's own (0) instead.
    restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
          BinaryName = "$(command -v runc)"
          Root = "$RUN/runc"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "$CNI_BIN"
      conf_dir = "$STATE/cni/net.d"
      max_conf_num = 1
EOF
  printf 'nameserver %s\noptions ndots:1 timeout:1 attempts:1\n' "$NODE_IP" >"$STATE/resolv.conf"
  # Cluster DNS (test/cluster/Corefile.example explains the choices): Services and pods under
  # cluster.local from the API, NXDOMAIN for every other name (nothing is forwarded off the node).
  cat >"$STATE/Corefile" <<EOF
cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {
    bind $NODE_IP
    errors
    kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
        kubeconfig $ADMIN_KUBECONFIG berth
        pods insecure
        ttl 5
    }
}
.:53 {
    bind $NODE_IP
    errors
    template ANY ANY {
        rcode NXDOMAIN
    }
}
EOF
  cat >"$STATE/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $PKI/ca.crt
authorization:
  mode: Webhook
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
containerRuntimeEndpoint: unix://$CTRD_SOCK
cgroupDriver: cgroupfs
cgroupRoot: /$CG_NAME
cgroupsPerQOS: true
failCgroupV1: false
failSwapOn: false
clusterDomain: $CLUSTER_DOMAIN
# CoreDNS runs on the node (no in-cluster Deployment: there is no registry for its image).
clusterDNS: [$NODE_IP]
resolvConf: $STATE/resolv.conf
# ConfigMap volumes follow edits within seconds rather than the default minute.
syncFrequency: 10s
podLogsDir: $STATE/pod-logs
volumePluginDir: $STATE/kubelet-plugins
# No registry: images cannot come back, so never garbage-collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 50Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
rotateCertificates: false
serverTLSBootstrap: false
registerNode: true
maxPods: 110
EOF
  cat >"$STATE/kube-proxy-config.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $STATE/kube-proxy.kubeconfig
hostnameOverride: $NODE_NAME
mode: ${KUBE_PROXY_MODE:-iptables}
clusterCIDR: $POD_CIDRS
nodePortAddresses: [primary]
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Never touch global conntrack sysctls (nf_conntrack_max is not per network namespace).
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
}

# ---------------------------------------------------------------------------------------------
# Network namespace, cgroups
setup_netns() {
  ip netns add "$NETNS"
  ip -n "$NETNS" link set lo up
  # The node's interface. A dummy device would do, but this kernel has no CONFIG_DUMMY: a veth
  # pair with both ends in the namespace (carrier up, nothing attached) serves the same purpose.
  ip -n "$NETNS" link add node0 type veth peer name node0-peer
  ip -n "$NETNS" addr add "$NODE_IP/32" dev node0
  ip -n "$NETNS" link set node0-peer up
  ip -n "$NETNS" link set node0 up
  # A route for the Service range, so that the node itself (curl, helm test's view) reaches
  # ClusterIPs: kube-proxy's nat OUTPUT rules rewrite them, but only after a route was found.
  ip -n "$NETNS" route add "$SERVICE_CIDR" dev node0
  in_ns sysctl -qw net.ipv4.ip_forward=1
  if ((DUALSTACK)); then
    # nodad: usable at once (nothing else is on that link to collide with).
    ip -n "$NETNS" addr add "$NODE_IP6/128" dev node0 nodad
    ip -n "$NETNS" -6 route add "$SERVICE_CIDR6" dev node0
    in_ns sysctl -qw net.ipv6.conf.all.forwarding=1
  fi
}
cgroup_v1_dirs() { # mount points of the cgroup v1 hierarchies
  awk '$3 == "cgroup" { print $2 }' /proc/self/mounts
}
cgroup_all_dirs() { # ... and of the cgroup v2 one (hybrid: runc makes its cgroups there too)
  awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/self/mounts
}
setup_cgroups() {
  local d
  for d in $(cgroup_v1_dirs); do
    mkdir -p "$d/$CG_NAME"
    if [[ -f $d/cpuset.cpus ]]; then
      cat "$d/cpuset.cpus" >"$d/$CG_NAME/cpuset.cpus"
      cat "$d/cpuset.mems" >"$d/$CG_NAME/cpuset.mems"
    fi
  done
  mkdir -p "$daemon_cgroup"
}

# ---------------------------------------------------------------------------------------------
ctr_() { ctr --address "$CTRD_SOCK" --namespace k8s.io "$@"; }
kubectl_() { in_ns "$KUBE_BIN/kubectl" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }
apiserver_ready() {
  in_ns curl -fsS --max-time 3 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://$NODE_IP:6443/readyz" >/dev/null
}
node_ready() {
  [[ $(kubectl_ get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}
proxy_synced() { # the kubernetes Service's rule is in place (and, dual-stack, the IPv6 proxier runs)
  if [[ ${KUBE_PROXY_MODE:-iptables} == nftables ]]; then
    grep -q "$SERVICE_IP" <<<"$(in_ns nft list table ip kube-proxy 2>/dev/null)" || return 1
    ((DUALSTACK == 0)) || in_ns nft list table ip6 kube-proxy >/dev/null 2>&1
  else
    grep -q "$SERVICE_IP/32" <<<"$(in_ns iptables -w -t nat -S KUBE-SERVICES 2>/dev/null)" || return 1
    ((DUALSTACK == 0)) || in_ns ip6tables -w -t nat -S KUBE-SERVICES >/dev/null 2>&1
  fi
}

leftovers_present() {
  [[ -e $NETNS_PATH || -e $STATE || -e $RUN ]] && return 0
  local d
  for d in $(cgroup_all_dirs); do [[ -d $d/$CG_NAME ]] && return 0; done
  return 1
}

cmd_up() {
  T0=$(now)
  STEP_T=$T0
  [[ $(id -u) == 0 ]] || die "needs root"
  # The host tools (containerd, runc, buildah, the CNI plugins, ...), installed when missing.
  "$here/setup.sh"
  resolve_kube_bin 1
  local bin=$KUBE_BIN
  local images=() img
  for img in ${BERTH_CLUSTER_IMAGES:-}; do
    [[ -s $img ]] || die "BERTH_CLUSTER_IMAGES: no such archive: $img"
    images+=("$(readlink -f "$img")")
  done

  if leftovers_present; then
    log "a previous cluster is left over; tearing it down first"
    (cmd_down) || die "could not remove the previous cluster (see above)"
    done_step previous-down
  fi
  STEP_T=$(now)
  mkdir -p "$STATE" "$RUN" "$LOGS" "$CACHE"
  local p
  echo "$bin" >"$STATE/kube-bin"
  : >"$STATE/host-paths-created"
  for p in "${HOST_PATHS[@]}"; do [[ -e $p ]] || echo "$p" >>"$STATE/host-paths-created"; done
  for p in "${KUBELET_SYSCTLS[@]}"; do echo "$p=$(sysctl -n "$p")"; done >"$STATE/host-sysctls"
  make_pki
  done_step pki
  PAUSE_NOTE=
  pause_image
  done_step pause-image "$PAUSE_NOTE"
  write_configs "$bin"
  # etcd's data and containerd's content store and snapshots (images, containers' writable
  # layers) in memory: faster imports and etcd writes, and `down` unmounts them instead of
  # deleting thousands of files (seconds on this disk). The limits only cap what may be used.
  mkdir -p "$STATE/etcd" "$STATE/containerd/root"
  mount -t tmpfs -o "size=${BERTH_CLUSTER_ETCD_TMPFS:-1g},mode=0700" berth-cluster-etcd "$STATE/etcd"
  mount -t tmpfs -o "size=${BERTH_CLUSTER_CONTAINERD_TMPFS:-8g},mode=0700" berth-cluster-containerd "$STATE/containerd/root"
  setup_netns
  setup_cgroups
  done_step netns+cgroups

  start_daemon etcd "$bin/etcd" --name berth --data-dir "$STATE/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster berth=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381 \
    --log-level warn --unsafe-no-fsync
  start_daemon containerd "$(command -v containerd)" --config "$STATE/containerd/config.toml" --log-level warn
  wait_until "etcd" 30 in_ns curl -fsS --max-time 2 http://127.0.0.1:2379/health
  done_step etcd
  start_daemon kube-apiserver "$bin/kube-apiserver" \
    --advertise-address="$NODE_IP" --bind-address=0.0.0.0 --secure-port=6443 \
    --etcd-servers=http://127.0.0.1:2379 \
    --client-ca-file="$PKI/ca.crt" --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$PKI/ca.crt" --kubelet-preferred-address-types=InternalIP,Hostname \
    --service-account-issuer="https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDRS" --allow-privileged=true \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --profiling=false --v=1

  wait_until "containerd" 30 ctr --address "$CTRD_SOCK" version
  done_step containerd
  # The images are imported in the background while the apiserver starts and the node registers
  # (no pod can be scheduled before the default ServiceAccount exists, waited for below).
  local import_t0 import_pid
  import_t0=$(now)
  (
    set -e
    ctr_ images import "$PAUSE_ARCHIVE"
    for img in "${images[@]}"; do ctr_ images import "$img"; done
    now >"$RUN/import.done"
  ) >"$LOGS/ctr-import.log" 2>&1 8>&- &
  import_pid=$!

  wait_until "the apiserver's /readyz" 90 apiserver_ready
  done_step apiserver-ready
  # The node's spec.podCIDRs: host-local's ranges whole (one node). The per-family mask flags are
  # refused on a single-stack cluster.
  local node_cidr_masks=(--node-cidr-mask-size="${POD_CIDR#*/}")
  ((DUALSTACK == 0)) ||
    node_cidr_masks=(--node-cidr-mask-size-ipv4="${POD_CIDR#*/}" --node-cidr-mask-size-ipv6="${POD_CIDR6#*/}")
  start_daemon kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig="$STATE/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$STATE/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$STATE/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDRS" --cluster-name=berth \
    --allocate-node-cidrs=true --cluster-cidr="$POD_CIDRS" "${node_cidr_masks[@]}" \
    --flex-volume-plugin-dir="$STATE/kubelet-plugins" --profiling=false --v=1
  start_daemon kube-scheduler "$bin/kube-scheduler" \
    --kubeconfig="$STATE/scheduler.kubeconfig" \
    --authentication-kubeconfig="$STATE/scheduler.kubeconfig" \
    --authorization-kubeconfig="$STATE/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --profiling=false --v=1
  start_daemon kubelet "$bin/kubelet" --config="$STATE/kubelet-config.yaml" \
    --kubeconfig="$STATE/kubelet.kubeconfig" --hostname-override="$NODE_NAME" --node-ip="$NODE_IPS" \
    --root-dir="$STATE/kubelet" --cert-dir="$STATE/kubelet/pki" --v=1
  start_daemon kube-proxy "$bin/kube-proxy" --config="$STATE/kube-proxy-config.yaml" --v=1
  start_daemon coredns "$bin/coredns" -conf "$STATE/Corefile"

  wait_until "node $NODE_NAME to register" 60 kubectl_ get node "$NODE_NAME"
  done_step kubelet-registered
  wait "$import_pid" || { cat "$LOGS/ctr-import.log" >&2; die "ctr images import failed (output above)"; }
  grep -qxF "$PAUSE_REF" <<<"$(ctr_ images ls -q)" || die "$PAUSE_ARCHIVE did not import as $PAUSE_REF"
  sed -n 's/^unpacking \(.*\) (.*/cluster:   imported \1/p' "$LOGS/ctr-import.log" >&2
  record_step images "$import_t0" "$(cat "$RUN/import.done")" "pause + ${#images[@]} archive(s), in the background"
  wait_until "node $NODE_NAME to be Ready" "${BERTH_CLUSTER_TIMEOUT:-180}" node_ready
  done_step node-ready
  # What every pod needs before it can start: its ServiceAccount and the root CA ConfigMap that the
  # projected token volume includes (both made by controller-manager).
  wait_until "the default ServiceAccount" 60 kubectl_ -n default get serviceaccount default
  wait_until "the kube-root-ca.crt ConfigMap" 60 kubectl_ -n default get configmap kube-root-ca.crt
  done_step serviceaccount
  wait_until "kube-proxy's rules for the kubernetes Service" 60 proxy_synced
  done_step kube-proxy-synced
  check_daemons
  log "cluster up in $(secs "$T0" "$(now)")s"
  printf '%s\n' "${timing[@]}" | sed 's/^/cluster:   /' >&2
  cmd_env
}

# ---------------------------------------------------------------------------------------------
# down
# A daemon that exited stays a zombie until PID 1 (not us: `up` has exited) reaps it, which can
# take seconds here: a zombie counts as gone.
alive() {
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [[ -n $st && $st != Z && $st != X ]]
}
stop_daemons() { # timeout_s names...: SIGTERM to all at once, SIGKILL to what is left after the timeout
  local timeout=$1 n pid i left
  shift
  local pids=() names=()
  for n in "$@"; do
    if pid=$(daemon_pid "$n"); then
      pids+=("$pid")
      names+=("$n")
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  ((${#pids[@]})) || return 0
  for ((i = 0; i < timeout * 20; i++)); do
    left=0
    for pid in "${pids[@]}"; do alive "$pid" && left=1; done
    ((left)) || return 0
    sleep 0.05
  done
  for i in "${!pids[@]}"; do
    if alive "${pids[i]}"; then
      log "${names[i]} (${pids[i]}) ignored SIGTERM for ${timeout}s; SIGKILL"
      kill -KILL "${pids[i]}" 2>/dev/null || true
    fi
  done
  for ((i = 0; i < 50; i++)); do
    left=0
    for pid in "${pids[@]}"; do alive "$pid" && left=1; done
    ((left)) || return 0
    sleep 0.1
  done
}
cgroup_pids() { # pids in a pids-hierarchy cgroup subtree
  local d=/sys/fs/cgroup/pids/$1
  [[ -d $d ]] || return 0
  find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -un
}
kill_cgroup() { # pids-cgroup subtree: SIGKILL until empty (5 s)
  local pids i
  for ((i = 0; i < 100; i++)); do
    pids=$(cgroup_pids "$1")
    [[ -n $pids ]] || return 0
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.05
  done
  return 1
}
# The network namespaces containerd made for pod sandboxes (cni-*), from their OCI specs.
record_sandbox_netns() {
  local id
  for id in $(ctr_ containers ls -q 2>/dev/null); do
    timeout 5 ctr --address "$CTRD_SOCK" --namespace k8s.io containers info "$id" 2>/dev/null |
      grep -o '"/var/run/netns/cni-[0-9a-f-]*"' | tr -d '"' | sed 's,^/var/run/,/run/,' || true
  done >>"$RUN/sandbox-netns" 2>/dev/null || true
}
netns_inode() { stat -L -c %i "$1" 2>/dev/null; }
ns_holders() { # inode -> pids whose network namespace it is
  local p
  for p in /proc/[0-9]*; do
    [[ $(readlink "$p/ns/net" 2>/dev/null) == "net:[$1]" ]] && echo "${p#/proc/}"
  done
  return 0
}
# containerd 1.6 puts each shim's socket in /run/containerd/s/, named by the sha256 of
# "<containerd socket>/<namespace>/<shim id>", whatever its own state directory; a shim that is
# killed leaves it there. Record ours (from the shims' command lines and the task bundles).
SHIM_SOCKETS=()
record_shim_sockets() {
  local p args id ns
  for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $CTRD_SOCK" || true); do
    args=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) || continue
    id=$(sed -n 's/.* -id \([^ ]*\).*/\1/p' <<<"$args")
    ns=$(sed -n 's/.* -namespace \([^ ]*\).*/\1/p' <<<"$args")
    if [[ -n $id && -n $ns ]]; then SHIM_SOCKETS+=("$id $ns"); fi
  done
  for p in "$RUN"/containerd/io.containerd.runtime.v2.task/*/*; do
    if [[ -d $p ]]; then SHIM_SOCKETS+=("$(basename "$p") $(basename "$(dirname "$p")")"); fi
  done
  return 0
}
remove_shim_sockets() {
  local e h
  for e in "${SHIM_SOCKETS[@]}"; do
    h=$(printf '%s' "$CTRD_SOCK/${e#* }/${e%% *}" | sha256sum | cut -d' ' -f1)
    rm -f "/run/containerd/s/$h"
  done
}
stop_containers() {
  record_shim_sockets
  # Nothing may restart containers while they go.
  kill_cgroup "$CG_NAME/kubepods" || log "processes of pods would not die: $(cgroup_pids "$CG_NAME/kubepods" | tr '\n' ' ')"
  if [[ -S $CTRD_SOCK ]] && daemon_pid containerd >/dev/null; then
    record_sandbox_netns
    # Delete the (now dead) tasks so the shims unmount the root filesystems and exit cleanly.
    local id
    for id in $(ctr_ tasks ls -q 2>/dev/null); do
      timeout 10 ctr --address "$CTRD_SOCK" --namespace k8s.io tasks delete --force "$id" >/dev/null 2>&1 || true
    done
  fi
}
SANDBOX_NETNS=()
remove_cni_netns() {
  local f start_ts ino ours=()
  start_ts=$(stat -c %Y "$STATE/host-sysctls" 2>/dev/null || echo 0)
  for f in /run/netns/cni-*; do
    if [[ -f $RUN/sandbox-netns ]] && grep -qxF "$f" "$RUN/sandbox-netns"; then
      ours+=("$f")
      continue
    fi
    # Not recorded (containerd was gone): ours when made since our `up` and held by no process.
    ino=$(netns_inode "$f") || continue
    if (($(stat -c %Y "$f") >= start_ts && start_ts > 0)) && [[ -z $(ns_holders "$ino") ]]; then ours+=("$f"); fi
  done
  for f in "${ours[@]}"; do
    umount "$f" 2>/dev/null || umount -l "$f" 2>/dev/null || true
    rm -f "$f"
  done
  SANDBOX_NETNS=("${ours[@]}")
}
unmount_under() { # dirs...: every mount below (deepest first), until none is left
  local pass m d
  for ((pass = 0; pass < 5; pass++)); do
    local mounts=()
    for d in "$@"; do
      mapfile -t -O "${#mounts[@]}" mounts < <(findmnt -rn -o TARGET | sed 's/\\x20/ /g' | awk -v d="$d" '$0 == d || index($0, d "/") == 1')
    done
    ((${#mounts[@]})) || return 0
    printf '%s\n' "${mounts[@]}" | sort -r -u | while read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
  done
}
remove_cgroups() { # rmdir may fail while the last processes are still being reaped: retry
  local d i busy
  for ((i = 0; i < 20; i++)); do
    busy=0
    for d in $(cgroup_all_dirs); do
      [[ -d $d/$CG_NAME ]] || continue
      find "$d/$CG_NAME" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [[ -d $d/$CG_NAME ]] && busy=1
    done
    ((busy)) || return 0
    sleep 0.1
  done
}
restore_sysctls() {
  [[ -s $STATE/host-sysctls ]] || return 0
  local kv
  while read -r kv; do
    [[ -n $kv ]] || continue
    [[ $(sysctl -n "${kv%%=*}" 2>/dev/null) == "${kv#*=}" ]] || sysctl -qw "$kv" || log "could not restore $kv"
  done <"$STATE/host-sysctls"
}
clean_host_paths() {
  local f p
  # kubelet's symlinks to our container logs
  for f in /var/log/containers/*; do
    if [[ -L $f && $(readlink "$f") == "$STATE/"* ]]; then rm -f "$f"; fi
  done
  # libcni's cache: our network's results and those of the loopback network containerd adds to
  # each of our sandboxes (named by sandbox id = shim id in containerd 1.6)
  local e id
  for f in /var/lib/cni/results/"$CNI_NETWORK"-*; do
    id=${f#/var/lib/cni/results/"$CNI_NETWORK"-}
    rm -f "$f" "/var/lib/cni/results/cni-loopback-${id%-*}-lo"
  done
  for e in "${SHIM_SOCKETS[@]}"; do rm -f "/var/lib/cni/results/cni-loopback-${e%% *}-lo"; done
  [[ -s $STATE/host-paths-created ]] || return 0
  mapfile -t HOST_PATHS_CREATED <"$STATE/host-paths-created"
  for p in "${HOST_PATHS_CREATED[@]}"; do
    if [[ $p == /var/lib/kubelet ]]; then
      rm -f /var/lib/kubelet/device-plugins/kubelet.sock /var/lib/kubelet/device-plugins/kubelet_internal_checkpoint
    fi
    if [[ -d $p ]]; then find "$p" -depth -type d -empty -delete 2>/dev/null || true; fi
  done
  return 0
}
HOST_PATHS_CREATED=()
# What of the cluster is still there (one line each); empty when nothing.
remaining() {
  local p ino pids
  pids=$(cgroup_pids "$CG_NAME")
  [[ -z $pids ]] || echo "processes in pids:/$CG_NAME: ${pids//$'\n'/ }"
  # by command line: every daemon and shim names our trees (configs, data dirs, socket)
  local pat="$STATE|$RUN|$NETNS_PATH"
  # (not this script nor its callers, whose command lines may well name those paths)
  local mine=" " a=$BASHPID
  while [[ -n $a && $a != 0 && $a != 1 ]]; do
    mine+="$a "
    a=$(awk '/^PPid:/ { print $2 }' "/proc/$a/status" 2>/dev/null)
  done
  while read -r p; do
    [[ -n $p && $mine != *" $p "* ]] || continue
    echo "process $p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-200)"
  done < <(pgrep -f -- "$pat" 2>/dev/null || true)
  if [[ -e $NETNS_PATH ]]; then
    echo "network namespace $NETNS"
    ino=$(netns_inode "$NETNS_PATH") && pids=$(ns_holders "$ino") && [[ -n $pids ]] &&
      echo "processes in netns $NETNS: ${pids//$'\n'/ }"
  fi
  findmnt -rn -o TARGET | awk -v s="$STATE" -v r="$RUN" \
    'index($0, s) == 1 || index($0, r) == 1 { print "mount " $0 }'
  for p in "${SANDBOX_NETNS[@]}"; do [[ -e $p ]] && echo "pod network namespace $p"; done
  for p in $(cgroup_all_dirs); do [[ -d $p/$CG_NAME ]] && echo "cgroup $p/$CG_NAME"; done
  for p in "${HOST_PATHS_CREATED[@]}"; do [[ -e $p ]] && echo "host path $p (made by the cluster, not empty)"; done
  [[ -e $STATE ]] && echo "directory $STATE"
  [[ -e $RUN ]] && echo "directory $RUN"
  return 0
}

cmd_down() {
  local t0 n
  t0=$(now)
  [[ $(id -u) == 0 ]] || die "needs root"
  resolve_kube_bin 0 || true
  if ! leftovers_present; then
    log "no cluster here"
  fi
  stop_daemons 10 kubelet kube-proxy kube-scheduler kube-controller-manager coredns
  stop_containers
  stop_daemons 10 containerd kube-apiserver
  stop_daemons 10 etcd
  # Whatever else they started (shims, stragglers of a crashed run).
  kill_cgroup "$CG_NAME" || log "processes in pids:/$CG_NAME would not die"
  if [[ -e $NETNS_PATH ]]; then
    local ino pids
    ino=$(netns_inode "$NETNS_PATH") || true
    if [[ -n $ino ]]; then
      pids=$(ns_holders "$ino")
      if [[ -n $pids ]]; then
        log "killing processes still in netns $NETNS: ${pids//$'\n'/ }"
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
        sleep 0.3
      fi
    fi
  fi
  remove_cni_netns
  remove_shim_sockets
  unmount_under "$STATE" "$RUN"
  if [[ -e $NETNS_PATH ]]; then
    ip netns del "$NETNS" 2>/dev/null || { umount "$NETNS_PATH" 2>/dev/null || umount -l "$NETNS_PATH"; rm -f "$NETNS_PATH"; }
  fi
  remove_cgroups
  restore_sysctls
  clean_host_paths
  local left
  [[ -e $STATE ]] && { rm -rf --one-file-system "$STATE" || true; }
  [[ -e $RUN ]] && { rm -rf --one-file-system "$RUN" || true; }
  left=$(remaining)
  if [[ -n $left ]]; then
    log "ERROR: left over after down:"
    printf '  %s\n' "$left" >&2
    return 1
  fi
  log "down in $(secs "$t0" "$(now)")s; nothing left"
}

# ---------------------------------------------------------------------------------------------
cmd_status() {
  local n pid ok=0
  resolve_kube_bin 0 || die "no Kubernetes binaries"
  for n in "${DAEMONS[@]}"; do
    if pid=$(daemon_pid "$n"); then
      printf '%-24s running (pid %s)\n' "$n" "$pid"
    else
      printf '%-24s NOT running\n' "$n"
      ok=1
    fi
  done
  if [[ -e $NETNS_PATH ]]; then
    kubectl_ get nodes -o wide 2>&1 || ok=1
    kubectl_ get pods -A -o wide 2>&1 || true
    node_ready || ok=1
  else
    echo "no network namespace $NETNS"
    ok=1
  fi
  return $ok
}

cmd_env() {
  resolve_kube_bin 0 || die "no Kubernetes binaries (test/cluster/build-kube.sh)"
  local bin=$KUBE_BIN
  cat <<EOF
export KUBECONFIG=$ADMIN_KUBECONFIG
export KUBECACHEDIR=$KUBECACHEDIR
export BERTH_CLUSTER_NETNS=$NETNS
export BERTH_CLUSTER_NODE=$NODE_NAME
export BERTH_CLUSTER_NODE_IP=$NODE_IP
export BERTH_CLUSTER_POD_CIDR=$POD_CIDR
export BERTH_CLUSTER_DUALSTACK=$DUALSTACK
export BERTH_CLUSTER_NODE_IPS=$NODE_IPS
export BERTH_CLUSTER_POD_CIDRS=$POD_CIDRS
export BERTH_CLUSTER_SERVICE_CIDRS=$SERVICE_CIDRS
export BERTH_CLUSTER_KUBE_BIN=$bin
export BERTH_CLUSTER_CONTAINERD_SOCK=$CTRD_SOCK
# Run a command where the apiserver and the pod IPs are reachable:
export BERTH_CLUSTER_EXEC="nsenter --net=$NETNS_PATH --"
export BERTH_KUBECTL="nsenter --net=$NETNS_PATH -- $bin/kubectl --kubeconfig=$ADMIN_KUBECONFIG"
export BERTH_HELM="$here/cluster.sh helm"
EOF
}

cmd_kubectl() {
  [[ -e $NETNS_PATH ]] || die "no cluster (run: $0 up)"
  resolve_kube_bin 0 || die "no Kubernetes binaries (test/cluster/build-kube.sh)"
  exec nsenter --net="$NETNS_PATH" -- "$KUBE_BIN/kubectl" --kubeconfig="$ADMIN_KUBECONFIG" "$@"
}
cmd_helm() {
  [[ -e $NETNS_PATH ]] || die "no cluster (run: $0 up)"
  local helm
  helm=$(helm_bin)
  mkdir -p "$STATE/helm"
  HELM_CACHE_HOME=$STATE/helm/cache HELM_CONFIG_HOME=$STATE/helm/config HELM_DATA_HOME=$STATE/helm/data \
    KUBECONFIG=$ADMIN_KUBECONFIG exec nsenter --net="$NETNS_PATH" -- "$helm" "$@"
}
cmd_ctr() {
  exec ctr --address "$CTRD_SOCK" --namespace k8s.io "$@"
}

# smoke: a privileged pod from the berth image to Completed, its IP, the node reaching a pod, and
# kubectl port-forward (to a QEMU monitor on TCP: the berth image has no other listener).
cmd_smoke() {
  resolve_kube_bin 0 || die "no Kubernetes binaries"
  [[ -e $NETNS_PATH ]] || die "no cluster (run: $0 up)"
  local image=${1:-}
  if [[ -z $image ]]; then
    local tag
    tag=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$root/charts/berth/Chart.yaml")
    image=localhost/berth:$tag
  fi
  grep -qxF "$image" <<<"$(ctr_ images ls -q)" || die "$image is not in containerd (BERTH_CLUSTER_IMAGES at up)"
  local t0
  t0=$(now)
  kubectl_ delete pod berth-smoke berth-smoke-listen --ignore-not-found --wait=true >/dev/null
  kubectl_ apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: berth-smoke
spec:
  restartPolicy: Never
  containers:
  - name: berth
    image: $image
    imagePullPolicy: Never
    command: ["/usr/local/bin/berth", "--version"]
    securityContext:
      privileged: true
---
apiVersion: v1
kind: Pod
metadata:
  name: berth-smoke-listen
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: qemu
    image: $image
    imagePullPolicy: Never
    command: ["qemu-system-x86_64", "-nodefaults", "-machine", "none", "-display", "none",
              "-monitor", "tcp:0.0.0.0:4444,server=on,wait=off"]
    ports:
    - containerPort: 4444
EOF
  local phase="" i
  for ((i = 0; i < 240; i++)); do
    phase=$(kubectl_ get pod berth-smoke -o 'jsonpath={.status.phase}' 2>/dev/null || true)
    [[ $phase == Succeeded || $phase == Failed ]] && break
    sleep 0.5
  done
  kubectl_ get pods -o wide
  [[ $phase == Succeeded ]] || { kubectl_ describe pod berth-smoke >&2 || true; die "berth-smoke: phase $phase"; }
  local out ip
  out=$(kubectl_ logs berth-smoke)
  ip=$(kubectl_ get pod berth-smoke -o 'jsonpath={.status.podIP}')
  log "berth-smoke: Completed in $(secs "$t0" "$(now)")s, pod IP $ip, output: $out"
  [[ $ip == 10.88.* ]] || die "berth-smoke: pod IP $ip is not in $POD_CIDR"

  kubectl_ wait --for=condition=Ready pod/berth-smoke-listen --timeout=60s >/dev/null ||
    { kubectl_ describe pod berth-smoke-listen >&2; die "berth-smoke-listen not Ready"; }
  ip=$(kubectl_ get pod berth-smoke-listen -o 'jsonpath={.status.podIP}')
  local banner
  banner=$(in_ns bash -c "exec 3<>/dev/tcp/$ip/4444; timeout 3 head -c 40 <&3" || true)
  [[ $banner == *QEMU* ]] || die "node -> pod $ip:4444: no QEMU monitor banner (got: $banner)"
  log "node -> pod $ip:4444: ${banner%%$'\r'*}"
  local pf_log=$RUN/port-forward.log pf_pid
  # Started directly (not through a function, whose subshell would be what $! names), without the
  # lock's descriptor.
  nsenter --net="$NETNS_PATH" -- "$KUBE_BIN/kubectl" --kubeconfig "$ADMIN_KUBECONFIG" \
    port-forward pod/berth-smoke-listen 14444:4444 >"$pf_log" 2>&1 8>&- &
  pf_pid=$!
  banner=
  for ((i = 0; i < 40; i++)); do
    banner=$(in_ns bash -c 'exec 3<>/dev/tcp/127.0.0.1/14444; timeout 3 head -c 40 <&3' 2>/dev/null || true)
    [[ $banner == *QEMU* ]] && break
    sleep 0.25
  done
  kill "$pf_pid" 2>/dev/null || true
  wait "$pf_pid" 2>/dev/null || true
  [[ $banner == *QEMU* ]] || { cat "$pf_log" >&2; die "kubectl port-forward: no QEMU monitor banner"; }
  log "kubectl port-forward 14444 -> pod :4444: ${banner%%$'\r'*}"
  kubectl_ delete pod berth-smoke berth-smoke-listen --wait=true >/dev/null
  log "smoke passed in $(secs "$t0" "$(now)")s"
}

lock_holders() {
  local p f
  for p in /proc/[0-9]*; do
    for f in "$p"/fd/*; do
      if [[ $(readlink "$f" 2>/dev/null) == "$CACHE/.cluster.lock" ]]; then
        echo "${p#/proc/} ($(tr '\0' ' ' <"$p/cmdline" | cut -c1-100))"
        break
      fi
    done
  done
}

usage() { sed -n '2,/^set -/p' "$0" | sed '$d; s/^# \{0,1\}//' || true; }

cmd=${1:-}
[[ $# -gt 0 ]] && shift
case $cmd in
  up | down | smoke)
    mkdir -p "$CACHE"
    exec 8>"$CACHE/.cluster.lock"
    if ! flock -n 8; then
      log "another cluster.sh holds $CACHE/.cluster.lock; waiting (at most 10 min)"
      flock -w 600 8 || die "$CACHE/.cluster.lock still held by: $(lock_holders)"
    fi
    "cmd_$cmd" "$@" || exit $?
    ;;
  status) cmd_status ;;
  env) cmd_env ;;
  kubectl) cmd_kubectl "$@" ;;
  helm) cmd_helm "$@" ;;
  ctr) cmd_ctr "$@" ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
