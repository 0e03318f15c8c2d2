{{/*
Names and labels in the shape `helm create` gives them, plus the per-VM pieces: every VM of
`vmlist` is `vmDefaults` merged with its own settings ("berth.vms"), validated once.
*/}}

{{/* The chart name, for the app.kubernetes.io/name label. */}}
{{- define "berth.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-wide resources (the shared image-cache claim, the test pod): <release>-<chart>. */}}
{{- define "berth.fullname" -}}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* chart-version, for the helm.sh/chart label. */}}
{{- define "berth.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "berth.labels" -}}
helm.sh/chart: {{ include "berth.chart" . }}
{{ include "berth.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of the release. */}}
{{- define "berth.selectorLabels" -}}
app.kubernetes.io/name: {{ include "berth.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of one VM's resources. Context: dict "root" $ "name" <vm resource name>. */}}
{{- define "berth.vmLabels" -}}
{{ include "berth.labels" .root }}
app.kubernetes.io/component: vm
berth/vm: {{ .name }}
{{- end }}

{{/* Selector labels of one VM's pod (immutable in a StatefulSet: never change them). */}}
{{- define "berth.vmSelectorLabels" -}}
{{ include "berth.selectorLabels" .root }}
berth/vm: {{ .name }}
{{- end }}

{{/* metadata.annotations of every resource (commonAnnotations), or nothing. */}}
{{- define "berth.annotations" -}}
{{- with .Values.commonAnnotations -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The berth image reference: repository[:tag][@digest]. */}}
{{- define "berth.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* Name of the shared image-cache claim. */}}
{{- define "berth.imageCacheClaim" -}}
{{- default (printf "%s-images" (include "berth.fullname" .)) .Values.imageCache.pvc.existingClaim }}
{{- end }}

{{/*
berth.merge: `over` merged into a copy of `base`, as JSON. Maps merge key by key; anything else in
`over` (a scalar, a list, false, 0, "") replaces what `base` has. Sprig's merge functions are not
used because older Helm releases let false and 0 lose against a default.
*/}}
{{- define "berth.merge" -}}
{{- $out := deepCopy .base }}
{{- range $key, $value := .over }}
{{- $current := get $out $key }}
{{- if and (kindIs "map" $value) (kindIs "map" $current) }}
{{- $_ := set $out $key (include "berth.merge" (dict "base" $current "over" $value) | fromJson) }}
{{- else }}
{{- $_ := set $out $key $value }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/*
berth.vms: the enabled VMs as JSON, {"<vm>": {<vmDefaults merged with the VM's settings>,
"resourceName": "<prefix><vm>", "hostname": "<prefix><vm>-0", "unusedKeys": [...],
"vncSecret": {"name", "key", "create"} (only while VNC is on with a password),
"controlSecret": {"name", "key", "create"} (only with a token Secret for the control listener)}}.
Fails, naming the value, on anything the schema cannot express.
*/}}
{{- define "berth.vms" -}}
{{- $root := . }}
{{- $vmlist := .Values.vmlist | default dict }}
{{- if not (kindIs "map" $vmlist) }}
{{- fail (printf "vmlist must be a map of VM name to settings (vmlist: {my-vm: {...}}), not a %s" (kindOf $vmlist)) }}
{{- end }}
{{- if not $vmlist }}
{{- fail "vmlist is empty: define at least one VM, e.g. --set vmlist.my-vm.vmconfig.rootfs.sourceurl=https://example.org/disk.qcow2 (see the chart README)" }}
{{- end }}
{{- $out := dict }}
{{- range $name, $given := $vmlist }}
{{- $where := printf "vmlist.%s" $name }}
{{- if not (kindIs "map" $given) }}
{{- fail (printf "%s must be a map of settings (enabled, vmconfig, netconfig, cloudconfig, console, viewer, pod), not %s" $where (toJson $given)) }}
{{- end }}
{{- $resource := printf "%s%s" $root.Values.vmNamePrefix $name }}
{{- if or (gt (len $resource) 52) (not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $resource)) }}
{{- fail (printf "%s: the name %q (with vmNamePrefix) must be at most 52 characters of lowercase letters, digits and '-', starting with a letter and not ending with '-'; it names the StatefulSet, its pod %s-0 (the VM's hostname) and the Services" $where $resource $resource) }}
{{- end }}
{{- $vm := include "berth.merge" (dict "base" $root.Values.vmDefaults "over" $given) | fromJson }}
{{- if $vm.enabled }}
{{- $rootfs := $vm.vmconfig.rootfs }}
{{- if not $rootfs.sourceurl }}
{{- fail (printf "%s.vmconfig.rootfs.sourceurl is required: the base image's http(s) URL or an absolute path in the berth image (IMG_SOURCE)" $where) }}
{{- end }}
{{- $shutdown := int $vm.vmconfig.shutdownTimeout }}
{{- $grace := int $vm.pod.terminationGracePeriodSeconds }}
{{- if and $grace (le $grace $shutdown) }}
{{- fail (printf "%s.pod.terminationGracePeriodSeconds (%d) must be above vmconfig.shutdownTimeout (%d), or Kubernetes kills the VM before it has powered off; use 0 for %d" $where $grace $shutdown (add $shutdown 15)) }}
{{- end }}
{{- $health := int $vm.netconfig.healthPort }}
{{- if and $vm.vmconfig.vnc (eq $health 5900) }}
{{- fail (printf "%s.netconfig.healthPort is 5900, VNC's port; choose another port or set vmconfig.vnc: false" $where) }}
{{- end }}
{{- range $port := include "berth.servicePorts" $vm | fromJsonArray }}
{{- if or (gt (len $port.name) 15) (not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" $port.name)) (not (regexMatch "[a-z]" $port.name)) (contains "--" $port.name) }}
{{- fail (printf "%s.netconfig.ports.%s: a port name must be at most 15 characters of lowercase letters, digits and '-' with at least one letter (a Kubernetes Service port name), e.g. ssh or http-alt" $where $port.name) }}
{{- end }}
{{- if eq (int $port.port) $health }}
{{- fail (printf "%s.netconfig.ports.%s is %d, berth's health port, which never reaches the VM; use another port or change netconfig.healthPort" $where $port.name $health) }}
{{- end }}
{{- end }}
{{- $ready := int $vm.netconfig.readinessTcpProbe }}
{{- if or (eq $ready $health) (and $vm.vmconfig.vnc (eq $ready 5900)) }}
{{- fail (printf "%s.netconfig.readinessTcpProbe is %d, a port berth itself serves (health or VNC), not the guest's" $where $ready) }}
{{- end }}
{{- if and (eq $vm.vmconfig.firmware "uefi-secure") (lt (int $vm.vmconfig.cpu.ram_mb) 384) }}
{{- fail (printf "%s.vmconfig.firmware is uefi-secure, which needs vmconfig.cpu.ram_mb of at least 384 (Secure Boot runs out of memory at 256); raise ram_mb, or use firmware uefi" $where) }}
{{- end }}
{{- if and (eq $vm.pod.security.mode "devicePlugin") (eq $vm.vmconfig.cpu.accel "kvm") }}
{{- $kvm := 0 }}
{{- range $resourceName, $count := $vm.pod.security.deviceResources }}
{{- if hasSuffix "/kvm" $resourceName }}{{ $kvm = add $kvm $count }}{{ end }}
{{- end }}
{{- if not $kvm }}
{{- fail (printf "%s.vmconfig.cpu.accel is kvm, but in devicePlugin mode no pod.security.deviceResources entry gives /dev/kvm (e.g. devices.kubevirt.io/kvm: 1); request it, or use accel auto or tcg" $where) }}
{{- end }}
{{- end }}
{{- if and $vm.console.stdin $vm.console.tty (eq $vm.pod.logFormat "json") }}
{{- fail (printf "%s: console.tty is true and pod.logFormat is json: a terminal merges berth's stderr into stdout and ends its lines with CR LF, so kubectl logs would not be one JSON record per line; set console.tty: false (kubectl attach -i still reaches the serial console) or logFormat: text" $where) }}
{{- end }}
{{- $viewer := int $vm.viewer.port }}
{{- if eq $viewer $health }}
{{- fail (printf "%s.viewer.port is %d, also netconfig.healthPort; berth's control listener and its health port need two ports" $where $viewer) }}
{{- end }}
{{- if and $vm.vmconfig.vnc (eq $viewer 5900) }}
{{- fail (printf "%s.viewer.port is 5900, VNC's port; choose another port or set vmconfig.vnc: false" $where) }}
{{- end }}
{{- if $vm.viewer.service.enabled }}
{{- range $port := include "berth.servicePorts" $vm | fromJsonArray }}
{{- if and (eq (int $port.port) $viewer) (eq $port.protocol "TCP") }}
{{- fail (printf "%s.netconfig.ports.%s is %d, the viewer's port, which with viewer.service.enabled is berth's on the pod IP and never reaches the VM; use another port or change viewer.port" $where $port.name $viewer) }}
{{- end }}
{{- end }}
{{- if eq $ready $viewer }}
{{- fail (printf "%s.netconfig.readinessTcpProbe is %d, a port berth itself serves (the viewer), not the guest's" $where $ready) }}
{{- end }}
{{- end }}
{{- $token := $vm.viewer.token }}
{{- if $token.existingSecret }}
{{- $_ := set $vm "controlSecret" (dict "name" $token.existingSecret "key" $token.existingSecretKey "create" false) }}
{{- else if $vm.viewer.service.enabled }}
{{- $_ := set $vm "controlSecret" (dict "name" (printf "%s-control" $resource) "key" "token" "create" true) }}
{{- end }}
{{- $unused := list }}
{{- range $key, $_ := $vm.cloudconfig }}
{{- if not (has $key (list "format" "userdata" "metadata" "networkdata")) }}
{{- $unused = append $unused (printf "%s.cloudconfig.%s" $where $key) }}
{{- end }}
{{- end }}
{{- $vncAuth := $vm.vmconfig.vncAuth }}
{{- if and $vm.vmconfig.vnc $vncAuth.insecureNoAuth (or $vncAuth.password $vncAuth.existingSecret) }}
{{- fail (printf "%s.vmconfig.vncAuth.insecureNoAuth is true, but a password is given too (password or existingSecret); choose one: the password (safe) or no authentication" $where) }}
{{- end }}
{{- if and $vm.vmconfig.vnc (not $vncAuth.insecureNoAuth) }}
{{- if $vncAuth.existingSecret }}
{{- $_ := set $vm "vncSecret" (dict "name" $vncAuth.existingSecret "key" $vncAuth.existingSecretKey "create" false) }}
{{- else }}
{{- $_ := set $vm "vncSecret" (dict "name" (printf "%s-vnc" $resource) "key" "password" "create" true) }}
{{- end }}
{{- end }}
{{- $_ := set $vm "dataDisks" (include "berth.dataDisks" (dict "disks" $vm.vmconfig.disks "where" (printf "%s.vmconfig.disks" $where)) | fromJsonArray) }}
{{- $_ := set $vm "resourceName" $resource }}
{{- $_ := set $vm "hostname" (printf "%s-0" $resource) }}
{{- $_ := set $vm "unusedKeys" $unused }}
{{- $_ := set $out $name $vm }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* The Service ports of one VM as a list of {name, port, protocol[, nodePort]}. Context: the VM. */}}
{{- define "berth.servicePorts" -}}
{{- $ports := list }}
{{- range $name, $port := .netconfig.ports }}
{{- if kindIs "map" $port }}
{{- $entry := dict "name" $name "port" (int $port.port) "protocol" (default "TCP" $port.protocol) }}
{{- if $port.nodePort }}
{{- $_ := set $entry "nodePort" (int $port.nodePort) }}
{{- end }}
{{- $ports = append $ports $entry }}
{{- else }}
{{- $ports = append $ports (dict "name" $name "port" (int $port) "protocol" "TCP") }}
{{- end }}
{{- end }}
{{- toJson $ports }}
{{- end }}

{{/*
berth.dataDisks: vmconfig.disks checked and completed, as a JSON list of {name, volumeMode,
volume ("data-<name>"), path (the mount folder or device node), claim (a volumeClaimTemplate's
spec, or absent with existingClaim), existingClaim, entry (the disk's VM_DISKS entry)}.
Context: dict "disks" <the list> "where" <the value's path, for messages>. Fails on what berth
would refuse at start (exit 3) and on what Kubernetes would refuse late (a duplicate path).
*/}}
{{- define "berth.dataDisks" -}}
{{- $where := .where }}
{{- $disks := .disks | default list }}
{{- if not (kindIs "slice" $disks) }}
{{- fail (printf "%s must be a list of disks ([{name: data, size: 20Gi}]), not %s" $where (toJson $disks)) }}
{{- end }}
{{- $reserved := list "/var/lib/berth/images" "/var/lib/berth/disks" "/userdata" "/metadata" "/networkdata" "/etc/berth/vnc" "/etc/berth/control" "/run/berth" }}
{{- $names := list }}
{{- $paths := list }}
{{- $out := list }}
{{- range $index, $disk := $disks }}
{{- $at := printf "%s[%d]" $where $index }}
{{- if not (kindIs "map" $disk) }}
{{- fail (printf "%s must be a map (name, size, volumeMode, ...), not %s" $at (toJson $disk)) }}
{{- end }}
{{- $name := toString ($disk.name | default "") }}
{{- if not (regexMatch "^[a-z0-9][-a-z0-9]{0,19}$" $name) }}
{{- fail (printf "%s.name %q must be 1-20 characters of a-z, 0-9 and '-', not starting with '-': it is the disk's virtio serial number (/dev/disk/by-id/virtio-<name>) and names its volume" $at $name) }}
{{- end }}
{{- $at = printf "%s (%s)" $at $name }}
{{- if has $name $names }}
{{- fail (printf "%s: the disk name %q is used twice; each disk needs a name of its own" $at $name) }}
{{- end }}
{{- $names = append $names $name }}
{{- $mode := $disk.volumeMode | default "Filesystem" }}
{{- $size := toString ($disk.size | default "") }}
{{- $existing := $disk.existingClaim | default "" }}
{{- if and (not $size) (not $existing) }}
{{- fail (printf "%s: give size (a claim from volumeClaimTemplates, e.g. size: 20Gi) or existingClaim (a claim that exists)" $at) }}
{{- end }}
{{- if and $existing (or $disk.storageClass $disk.accessModes) }}
{{- fail (printf "%s: storageClass and accessModes describe a claim the chart makes; with existingClaim %q the claim has its own, drop them" $at $existing) }}
{{- end }}
{{- $entry := "" }}
{{- $path := "" }}
{{- if eq $mode "Block" }}
{{- $path = $disk.devicePath | default "" }}
{{- if not $path }}
{{- fail (printf "%s: a Block disk needs devicePath, the device node in the pod that berth hands to QEMU (e.g. devicePath: /dev/%s)" $at $name) }}
{{- end }}
{{- if or (not (regexMatch "^/dev/[^:,=]*[^/:,=]$" $path)) (contains "/../" (printf "%s/" $path)) }}
{{- fail (printf "%s.devicePath %q must be a path under /dev/ without '..', ':', ',' or '='" $at $path) }}
{{- end }}
{{- range $key := list "mountPath" "diskSize" "format" }}
{{- if get $disk $key }}
{{- fail (printf "%s: %s is for Filesystem disks (a file in a folder); a Block disk is the claim's device itself, raw, at devicePath" $at $key) }}
{{- end }}
{{- end }}
{{- $entry = printf "%s=%s" $name $path }}
{{- else }}
{{- if $disk.devicePath }}
{{- fail (printf "%s: devicePath is for volumeMode: Block; a Filesystem disk is a file in the folder mountPath" $at) }}
{{- end }}
{{- $path = $disk.mountPath | default (printf "/var/lib/berth/data/%s" $name) }}
{{- if or (not (regexMatch "^/[^:,=]*[^/:,=]$" $path)) (contains "/../" (printf "%s/" $path)) }}
{{- fail (printf "%s.mountPath %q must be an absolute path without '..', ':', ',' or '=' (and not /)" $at $path) }}
{{- end }}
{{- range $taken := $reserved }}
{{- if or (eq $path $taken) (hasPrefix (printf "%s/" $path) $taken) (hasPrefix (printf "%s/" $taken) $path) }}
{{- fail (printf "%s.mountPath %q overlaps %s, which the chart mounts for berth; use another folder, e.g. /var/lib/berth/data/%s" $at $path $taken $name) }}
{{- end }}
{{- end }}
{{- $diskSize := toString ($disk.diskSize | default "") }}
{{- if and (not $diskSize) (not $size) }}
{{- fail (printf "%s: a Filesystem disk on existingClaim %q needs size (or diskSize): the size of the file berth makes in it, e.g. size: 20Gi" $at $existing) }}
{{- end }}
{{- if not $diskSize }}
{{- if not (regexMatch "^[0-9]+(Ki|Mi|Gi|Ti)$" $size) }}
{{- fail (printf "%s: give diskSize (the disk file's size, binary units, e.g. 19Gi): size %q is not a whole number of Ki, Mi, Gi or Ti to take it from" $at $size) }}
{{- end }}
{{- $diskSize = $size }}
{{- end }}
{{- $entry = printf "%s=%s:%s" $name $path $diskSize }}
{{- if eq ($disk.format | default "qcow2") "raw" }}
{{- $entry = printf "%s:raw" $entry }}
{{- end }}
{{- end }}
{{- range $other := $paths }}
{{- if or (eq $other $path) (hasPrefix (printf "%s/" $other) $path) (hasPrefix (printf "%s/" $path) $other) }}
{{- fail (printf "%s: %s overlaps %s of another disk; each disk needs a path of its own" $at $path $other) }}
{{- end }}
{{- end }}
{{- $paths = append $paths $path }}
{{- $out_disk := dict "name" $name "volumeMode" $mode "volume" (printf "data-%s" $name) "path" $path "entry" $entry "existingClaim" $existing }}
{{- if not $existing }}
{{- $claim := dict "accessModes" ($disk.accessModes | default (list "ReadWriteOnce")) "volumeMode" $mode "resources" (dict "requests" (dict "storage" $size)) }}
{{- with $disk.storageClass }}
{{- $_ := set $claim "storageClassName" . }}
{{- end }}
{{- $_ := set $out_disk "claim" $claim }}
{{- end }}
{{- $out = append $out $out_disk }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* VM_DISKS from berth.dataDisks' list. */}}
{{- define "berth.diskList" -}}
{{- $entries := list }}
{{- range . }}{{ $entries = append $entries .entry }}{{ end }}
{{- join "," $entries }}
{{- end }}

{{/* The volumeDevices entries of the Block disks of berth.dataDisks' list, or nothing. */}}
{{- define "berth.blockDisks" -}}
{{- range . }}
{{- if eq .volumeMode "Block" }}
- name: {{ .volume }}
  devicePath: {{ .path }}
{{- end }}
{{- end }}
{{- end }}
