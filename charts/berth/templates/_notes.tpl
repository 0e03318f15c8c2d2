{{/*
The text of NOTES.txt, kept in a named template so that the chart's tests can render it with
`helm template` (test/chart/run.sh), which never prints NOTES.txt itself.
*/}}
{{- define "berth.notes" -}}
{{- $ns := .Release.Namespace }}
{{- $vms := include "berth.vms" . | fromJson -}}
Berth {{ .Chart.AppVersion }}: {{ len $vms }} VM(s) in namespace {{ $ns }}, release {{ .Release.Name }}.
Each VM is the pod <vm>-0 of a StatefulSet: it answers on the pod IP, every port and protocol,
except berth's own ports (health, VNC 5900 unless vnc is off, the viewer's with its Service).
{{- if not $vms }}

Every VM in vmlist is disabled: nothing runs. Their pet-disk claims are kept.
{{- end }}
{{- range $name, $vm := $vms }}
{{- $pod := $vm.hostname }}
{{- $ports := include "berth.servicePorts" $vm | fromJsonArray }}
{{- $service := $vm.netconfig.service }}

== VM {{ $name }} (pod {{ $pod }}, pet disk {{ $pod }}.qcow2 on claim disk-{{ $pod }})

  Watch it boot (berth's log and the guest's serial console):
    kubectl -n {{ $ns }} get pod {{ $pod }} -o wide -w
    kubectl -n {{ $ns }} logs -f {{ $pod }}

  The pod IP (the VM's address for everything in the cluster):
    POD_IP=$(kubectl -n {{ $ns }} get pod {{ $pod }} -o jsonpath='{.status.podIP}')
{{- if and $service.enabled $ports }}
  {{- $first := index $ports 0 }}
  {{- $ssh := $first }}
  {{- range $ports }}{{ if eq (int .port) 22 }}{{ $ssh = . }}{{ end }}{{ end }}

  Service {{ $vm.resourceName }}.{{ $ns }}.svc ({{ $service.type }}) ports:{{ range $ports }} {{ .name }} {{ int .port }}/{{ .protocol }}{{ end }}
{{- if eq (int $ssh.port) 22 }}
  SSH (the user and key come from your cloud-init userdata):
    from a pod in the cluster:  ssh <user>@{{ $vm.resourceName }}.{{ $ns }}.svc
    from the pod network:       ssh <user>@$POD_IP
    from your machine:          kubectl -n {{ $ns }} port-forward svc/{{ $vm.resourceName }} 2222:22
                                ssh -p 2222 <user>@127.0.0.1
{{- else }}
  From your machine: kubectl -n {{ $ns }} port-forward svc/{{ $vm.resourceName }} {{ int $first.port }}:{{ int $first.port }}
{{- end }}
{{- if eq $service.type "NodePort" }}
  NodePort: kubectl -n {{ $ns }} get svc {{ $vm.resourceName }} -o jsonpath='{.spec.ports[*].nodePort}'
{{- else if eq $service.type "LoadBalancer" }}
  Load balancer address: kubectl -n {{ $ns }} get svc {{ $vm.resourceName }} -o jsonpath='{.status.loadBalancer.ingress[0]}'
{{- end }}
{{- else }}

  No Service ({{ if not $service.enabled }}netconfig.service.enabled is false{{ else }}netconfig.ports is empty{{ end }}); reach it by pod IP
  or through the pod, e.g. SSH:
    kubectl -n {{ $ns }} port-forward pod/{{ $pod }} 2222:22
    ssh -p 2222 <user>@127.0.0.1
{{- end }}
{{- if $vm.vncSecret }}

  VNC (the VM's screen; the password is in Secret {{ $vm.vncSecret.name }}, only 8 characters count):
    kubectl -n {{ $ns }} get secret {{ $vm.vncSecret.name }} -o jsonpath='{.data.{{ $vm.vncSecret.key | replace "." "\\." }}}' | base64 -d; echo
    kubectl -n {{ $ns }} port-forward pod/{{ $pod }} 5900:5900
    vncviewer 127.0.0.1:5900
{{- else if $vm.vmconfig.vnc }}

  WARNING: VNC has NO PASSWORD (vmconfig.vncAuth.insecureNoAuth: true): whoever reaches the pod IP
  gets the VM's screen and keyboard. Unsafe; remove insecureNoAuth to get a password.
    kubectl -n {{ $ns }} port-forward pod/{{ $pod }} 5900:5900
    vncviewer 127.0.0.1:5900
{{- else }}

  VNC is off (vmconfig.vnc: false): port 5900 reaches the VM like any other port.
{{- end }}

{{- $viewer := $vm.viewer }}
{{- $port := int $viewer.port }}

  {{ if $viewer.enabled }}Screen and serial console{{ else }}Serial console{{ end }} in your browser (berth's control page; every request needs its token):
    kubectl -n {{ $ns }} port-forward pod/{{ $pod }} {{ $port }}
{{- with $vm.controlSecret }}
    kubectl -n {{ $ns }} get secret {{ .name }} -o jsonpath='{.data.{{ .key | replace "." "\\." }}}' | base64 -d; echo
{{- else }}
    kubectl -n {{ $ns }} exec pod/{{ $pod }} -- cat /run/berth/control-token
{{- end }}
{{- if $viewer.enabled }}
    open http://127.0.0.1:{{ $port }}/web/screen.html and log in with that token
    (the serial console: /web/serial.html; status, power buttons and QMP: /)
{{- else }}
    open http://127.0.0.1:{{ $port }}/web/serial.html and log in with that token
    (status, power buttons and QMP: /; no screen, viewer.enabled is false)
{{- end }}
{{- if $viewer.service.enabled }}
  WARNING: viewer.service.enabled: the Service {{ $vm.resourceName }}-viewer ({{ $viewer.service.type }}) serves this page
  over plain HTTP to whoever reaches it with the token (the VM's screen, keyboard, console, power).
  Open it by IP address (berth answers a host name other than localhost with 421):
    VIEWER_IP=$(kubectl -n {{ $ns }} get svc {{ $vm.resourceName }}-viewer -o jsonpath='{.spec.clusterIP}')
    http://$VIEWER_IP:{{ $port }}/web/{{ if $viewer.enabled }}screen{{ else }}serial{{ end }}.html
{{- end }}
{{- if and $vm.console.stdin $vm.console.tty }}

  Serial console in your terminal (log in on the guest's ttyS0; Ctrl-C goes to the guest;
  detach with ctrl-p ctrl-q):
    kubectl -n {{ $ns }} attach -it pod/{{ $pod }}
{{- else if $vm.console.stdin }}

  Serial console in your terminal, line by line (console.tty: false; Ctrl-C ends kubectl):
    kubectl -n {{ $ns }} attach -i pod/{{ $pod }}
{{- else }}

  The serial console is read-only here (console.stdin: false): kubectl logs shows it; type on it
  in the browser (/web/serial.html above).
{{- end }}

  Health and metrics: http://$POD_IP:{{ int $vm.netconfig.healthPort }}/healthz, /readyz, /metrics
  Edit its cloud-init data (reaches the running VM within about a minute):
    kubectl -n {{ $ns }} edit configmap {{ $vm.resourceName }}-cloudconfig
{{- range $vm.unusedKeys }}

  WARNING: {{ . }} is not a cloudconfig key berth uses (userdata, metadata, networkdata, format): ignored.
{{- end }}
{{- end }}
{{- if .Values.tests.enabled }}

Check every VM's Service ports: helm test {{ .Release.Name }} -n {{ $ns }}
{{- end }}
{{- end }}
