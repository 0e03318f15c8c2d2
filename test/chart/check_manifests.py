#!/usr/bin/env python3
"""Checks the berth chart's rendered manifests against the values they were rendered from.

usage: check_manifests.py RENDERED.yaml CHART_VALUES.yaml [VALUES.yaml...] [--notes NOTES.txt]

The values are merged the way Helm does (chart values, then each file; maps merge, null removes) and
every VM is vmDefaults merged with its entry, computed here independently of the chart's templates.
Then, for every enabled VM, the properties Berth depends on are asserted: a StatefulSet (never a
Deployment) of one pod whose hostname names the pet disk, the pet-disk claim template, the
ConfigMap data byte for byte and its keys mounted as directories (never subPath), the environment
of the runtime contract, probes on the health port, a grace period above the shutdown timeout, the
security mode, the image cache, the Services and the helm test pod, the consoles (stdin and tty for
`kubectl attach`, the control listener on loopback unless its Service is on, then behind a token
Secret); with --notes, that the rendered NOTES.txt gives each VM's commands (logs, port-forward,
ssh, VNC, the viewer's page and token, attach). Prints one line per failed check and exits 1 if
there was any.
"""
import base64
import sys

import yaml

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
    return condition


def merge(base, over):
    """Helm's coalescing for values files and the chart's berth.merge: maps merge key by key."""
    if not isinstance(base, dict) or not isinstance(over, dict):
        return over
    out = dict(base)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def check_vm(name, vm, docs, values, where):
    prefix = values.get("vmNamePrefix", "")
    resource = prefix + name
    hostname = resource + "-0"
    by_kind = lambda kind, n: docs.get((kind, n))  # noqa: E731

    sts = by_kind("StatefulSet", resource)
    if not check(sts is not None, f"{where}: no StatefulSet {resource}"):
        return
    spec = sts["spec"]
    check(spec.get("replicas") == 1, f"{where}: replicas is {spec.get('replicas')}, not 1")
    pod = spec["template"]
    pod_spec = pod["spec"]
    selector = spec["selector"]["matchLabels"]
    labels = pod["metadata"]["labels"]
    check(all(labels.get(k) == v for k, v in selector.items()),
          f"{where}: selector {selector} does not match the pod labels {labels}")
    for other_name, other_vm in values["vmlist"].items():
        if other_name != name and other_vm.get("enabled", True) is not False:
            other = by_kind("StatefulSet", prefix + other_name)
            if other:
                other_labels = other["spec"]["template"]["metadata"]["labels"]
                check(not all(other_labels.get(k) == v for k, v in selector.items()),
                      f"{where}: its selector also matches the pods of {other_name}")
    check("helm.sh/chart" not in labels and "app.kubernetes.io/version" not in labels,
          f"{where}: the pod template carries version labels (a chart upgrade would restart the VM)")

    # The headless Service the StatefulSet names.
    headless = by_kind("Service", spec.get("serviceName"))
    if check(headless is not None, f"{where}: serviceName {spec.get('serviceName')} is no Service"):
        check(headless["spec"].get("clusterIP") == "None", f"{where}: {spec['serviceName']} is not headless")
        check(headless["spec"].get("selector") == selector, f"{where}: headless selector differs")

    containers = pod_spec["containers"]
    check(len(containers) == 1, f"{where}: {len(containers)} containers, expected berth alone")
    c = containers[0]
    env = env_of(c)
    for e in c.get("env", []):
        check(isinstance(e.get("value", ""), str), f"{where}: env {e['name']} is not a string")

    # The runtime contract.
    cpu, rootfs, vmc = vm["vmconfig"]["cpu"], vm["vmconfig"]["rootfs"], vm["vmconfig"]
    net, cloud, podv = vm["netconfig"], vm["cloudconfig"], vm["pod"]
    expected = {
        "IMG_SOURCE": rootfs["sourceurl"],
        "IMG_TARGET": rootfs.get("localtarget") or None,
        "IMG_CHECKSUM": rootfs.get("checksum") or None,
        "VM_CDROM": (vmc.get("iso") or {}).get("sourceurl") or None,
        "VM_CDROM_CHECKSUM": (vmc.get("iso") or {}).get("checksum") or None,
        "VM_CPUS": str(cpu["vcpu"]),
        "VM_MEMORY": f"{cpu['ram_mb']}Mi",
        "VM_ACCEL": cpu["accel"],
        "VM_FIRMWARE": vmc["firmware"],
        "VM_EFIVARS_RESET": "yes" if vmc.get("efivarsReset") else None,
        "VM_DISK_SIZE": rootfs.get("disk_size") or None,
        "NO_VNC": None if vmc["vnc"] else "1",
        "BERTH_QEMU_ARGS": vmc.get("qemuArgs") or None,
        "VM_TPM": "yes" if vmc.get("tpm") else None,
        "VM_IP": net.get("vmIP") or None,
        "VM_GW": net.get("vmGateway") or None,
        "VM_MAC": net.get("mac") or None,
        "BERTH_READY_TCP": str(net["readinessTcpProbe"]) if net.get("readinessTcpProbe") else None,
        "BERTH_READY_AGENT": "yes" if net.get("readinessAgent") else None,
        "BERTH_FSFREEZE_TIMEOUT": (str(vmc["fsfreezeTimeout"])
                                   if vmc.get("fsfreezeTimeout", 60) != 60 else None),
        "BERTH_HEALTH_PORT": str(net["healthPort"]),
        "BERTH_SHUTDOWN_TIMEOUT": str(vmc["shutdownTimeout"]),
        "BERTH_DRIVE_FORMAT": cloud["format"],
        "BERTH_LOG_FORMAT": podv["logFormat"],
        "BERTH_LOG_LEVEL": podv["logLevel"],
    }
    for extra in podv.get("env") or []:
        expected[extra["name"]] = extra.get("value")
    for key, value in expected.items():
        check(env.get(key) == value, f"{where}: env {key}={env.get(key)!r}, expected {value!r}")

    # Volumes: pet disk, image cache, cloud-init directories; never a subPath.
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    for m in c.get("volumeMounts", []):
        check("subPath" not in m and "subPathExpr" not in m,
              f"{where}: mount {m['mountPath']} uses subPath (ConfigMap edits would never arrive)")
    claims = {t["metadata"]["name"]: t for t in spec.get("volumeClaimTemplates", [])}
    disk_mount = mounts.get(env.get("BERTH_DISK_DIR"))
    if check(disk_mount is not None, f"{where}: BERTH_DISK_DIR {env.get('BERTH_DISK_DIR')} is not mounted"):
        claim = claims.get(disk_mount["name"])
        if check(claim is not None, f"{where}: the pet-disk mount is not a volumeClaimTemplate"):
            cs = claim["spec"]
            check(cs["resources"]["requests"]["storage"] == rootfs["pvc_size"],
                  f"{where}: pet-disk claim size {cs['resources']['requests']['storage']}, "
                  f"expected {rootfs['pvc_size']}")
            check(cs.get("storageClassName") == (rootfs.get("pvc_class") or None),
                  f"{where}: storageClassName {cs.get('storageClassName')!r}, expected {rootfs.get('pvc_class')!r}")
            check(cs["accessModes"] == rootfs["pvc_access_modes"], f"{where}: accessModes {cs['accessModes']}")
    images_mount = mounts.get(env.get("BERTH_IMAGE_DIR"))
    if check(images_mount is not None, f"{where}: BERTH_IMAGE_DIR is not mounted"):
        volume = volumes[images_mount["name"]]
        cache = values["imageCache"]
        if cache["type"] == "hostPath":
            check(volume.get("hostPath", {}).get("path") == cache["hostPath"]["path"],
                  f"{where}: image cache is not hostPath {cache['hostPath']['path']}: {volume}")
        elif cache["type"] == "pvc":
            claim_name = cache["pvc"]["existingClaim"] or f"{RELEASE}-berth-images"
            check(volume.get("persistentVolumeClaim", {}).get("claimName") == claim_name,
                  f"{where}: image cache is not claim {claim_name}: {volume}")
            if not cache["pvc"]["existingClaim"]:
                check(("PersistentVolumeClaim", claim_name) in docs, f"{where}: no claim {claim_name}")
        else:
            check("emptyDir" in volume, f"{where}: image cache is not an emptyDir: {volume}")

    configmap = by_kind("ConfigMap", f"{resource}-cloudconfig")
    if check(configmap is not None, f"{where}: no ConfigMap {resource}-cloudconfig"):
        data = configmap.get("data") or {}
        for key in ("userdata", "metadata", "networkdata"):
            given = cloud.get(key) or None
            check(data.get(key) == given, f"{where}: ConfigMap {key} differs from the values: "
                  f"{data.get(key)!r} != {given!r}")
            path = env.get(f"BERTH_{key.upper()}")
            mount = mounts.get(path)
            if check(mount is not None, f"{where}: BERTH_{key.upper()}={path} is not a mount"):
                cm = volumes[mount["name"]].get("configMap", {})
                check(cm.get("name") == f"{resource}-cloudconfig", f"{where}: {path} is not the ConfigMap")
                items = cm.get("items")
                check(items is None or any(i["key"] == key and i["path"] == key for i in items),
                      f"{where}: {path} does not hold the key {key}")
                check(cm.get("optional") is True, f"{where}: {path} is not optional")

    # Probes on the health port; the grace period above the shutdown timeout.
    health = int(env["BERTH_HEALTH_PORT"])
    ports = {p["name"]: p for p in c.get("ports", [])}
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"),
                        ("readinessProbe", "/readyz")):
        if not podv[probe]["enabled"]:
            check(probe not in c, f"{where}: {probe} rendered although disabled")
            continue
        p = c.get(probe)
        if not check(p is not None, f"{where}: no {probe}"):
            continue
        get = p.get("httpGet", {})
        port = get.get("port")
        port = ports.get(port, {}).get("containerPort") if isinstance(port, str) else port
        check(port == health and get.get("path") == path,
              f"{where}: {probe} is {p}, expected httpGet {path} on {health}")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        if probe in c:
            for key in ("periodSeconds", "timeoutSeconds", "failureThreshold"):
                check(c[probe].get(key) == podv[probe][key],
                      f"{where}: {probe}.{key} is {c[probe].get(key)}, expected {podv[probe][key]}")
    grace = pod_spec.get("terminationGracePeriodSeconds", 30)
    check(grace > int(env["BERTH_SHUTDOWN_TIMEOUT"]),
          f"{where}: terminationGracePeriodSeconds {grace} <= BERTH_SHUTDOWN_TIMEOUT")
    check(pod_spec.get("enableServiceLinks") is False, f"{where}: service links would enter berth's env")

    # Security mode.
    sc = c.get("securityContext", {})
    limits = c.get("resources", {}).get("limits", {})
    if podv["security"]["mode"] == "privileged":
        check(sc.get("privileged") is True, f"{where}: not privileged")
    else:
        check(not sc.get("privileged"), f"{where}: privileged in devicePlugin mode")
        check("NET_ADMIN" in sc.get("capabilities", {}).get("add", []), f"{where}: no NET_ADMIN")
        for resource_name, count in podv["security"]["deviceResources"].items():
            check(str(limits.get(resource_name)) == str(count) if count else resource_name not in limits,
                  f"{where}: limit {resource_name} is {limits.get(resource_name)}, expected {count or 'none'}")
    for key, value in (podv.get("resources") or {}).get("limits", {}).items():
        check(str(limits.get(key)) == str(value), f"{where}: limit {key} is {limits.get(key)}, expected {value}")
    for key in ("nodeSelector", "tolerations", "affinity"):
        check(pod_spec.get(key) == (podv.get(key) or None), f"{where}: {key} is {pod_spec.get(key)}")

    # VNC is a container port exactly when it is on.
    check(("vnc" in ports) == bool(vmc["vnc"]), f"{where}: VNC port {'missing' if vmc['vnc'] else 'present'}")
    check_vnc_auth(vmc, resource, env, mounts, volumes, by_kind, where)
    check_consoles(vm, resource, c, env, mounts, volumes, by_kind, selector, where)
    check_disks(vmc.get("disks") or [], c, env, mounts, volumes, claims, where)

    # The Service: the user's ports, selecting the pod.
    wanted = []
    for port_name, port in (net.get("ports") or {}).items():
        if isinstance(port, dict):
            wanted.append((port_name, port["port"], port.get("protocol", "TCP")))
        else:
            wanted.append((port_name, port, "TCP"))
    service = by_kind("Service", resource)
    if wanted and net["service"]["enabled"]:
        if check(service is not None, f"{where}: no Service {resource}"):
            got = sorted((p["name"], p["port"], p["protocol"]) for p in service["spec"]["ports"])
            check(got == sorted(wanted), f"{where}: Service ports {got}, expected {sorted(wanted)}")
            check(all(p["targetPort"] == p["port"] for p in service["spec"]["ports"]),
                  f"{where}: a Service port maps to another pod port")
            check(service["spec"]["type"] == net["service"]["type"], f"{where}: Service type")
            check(service["spec"]["selector"] == selector, f"{where}: Service selector differs")
            for port_name, number, _ in wanted:
                check(number != health, f"{where}: Service port {port_name} is the health port")
    else:
        check(service is None, f"{where}: a Service without ports")

    test_pod = docs.get(("Pod", f"{RELEASE}-berth-test"))
    if values["tests"]["enabled"] and net["service"]["enabled"]:
        for port_name, number, protocol in wanted:
            if protocol == "TCP" and check(test_pod is not None, f"{where}: no helm test pod"):
                args = test_pod["spec"]["containers"][0]["command"]
                target = f"{resource}.{NAMESPACE}.svc:{number}"
                check(target in args, f"{where}: helm test does not check {target}")


def check_disks(disks, c, env, mounts, volumes, claims, where):
    """Each data disk is in VM_DISKS, in order, and is the volume it names: a folder mounted at its
    path (Filesystem) or a device at its devicePath (Block), from a claim template or the existing
    claim."""
    entries = []
    devices = {d["devicePath"]: d for d in c.get("volumeDevices", [])}
    for disk in disks:
        name, block = disk["name"], disk.get("volumeMode") == "Block"
        if block:
            path = disk["devicePath"]
            entries.append(f"{name}={path}")
            volume = devices.get(path)
            check(path not in mounts, f"{where}: Block disk {name} is mounted as a folder")
        else:
            path = disk.get("mountPath") or f"/var/lib/berth/data/{name}"
            size = disk.get("diskSize") or disk["size"]
            entries.append(f"{name}={path}:{size}" + (":raw" if disk.get("format") == "raw" else ""))
            volume = mounts.get(path)
            check(path not in devices, f"{where}: Filesystem disk {name} is a volumeDevice")
        if not check(volume is not None, f"{where}: disk {name}: nothing at {path}"):
            continue
        if disk.get("existingClaim"):
            claim = volumes.get(volume["name"], {}).get("persistentVolumeClaim", {})
            check(claim.get("claimName") == disk["existingClaim"],
                  f"{where}: disk {name} is not claim {disk['existingClaim']}: {claim}")
            check(volume["name"] not in claims, f"{where}: disk {name} also has a claim template")
            continue
        template = claims.get(volume["name"])
        if not check(template is not None, f"{where}: disk {name}'s volume is not a claim template"):
            continue
        cs = template["spec"]
        check(cs.get("volumeMode") == ("Block" if block else "Filesystem"),
              f"{where}: disk {name}'s claim has volumeMode {cs.get('volumeMode')}")
        check(cs["resources"]["requests"]["storage"] == disk["size"], f"{where}: disk {name}'s claim size")
        check(cs.get("storageClassName") == (disk.get("storageClass") or None),
              f"{where}: disk {name}'s storageClassName {cs.get('storageClassName')!r}")
        check(cs["accessModes"] == (disk.get("accessModes") or ["ReadWriteOnce"]),
              f"{where}: disk {name}'s accessModes {cs['accessModes']}")
    check(env.get("VM_DISKS") == (",".join(entries) or None),
          f"{where}: VM_DISKS={env.get('VM_DISKS')!r}, expected {','.join(entries)!r}")


def check_secret_file(path, mounts, volumes, secret_name, key, what, where):
    """The file at `path` is key `key` of Secret `secret_name`, mounted read-only."""
    directory, file = path.rsplit("/", 1)
    mount = mounts.get(directory)
    if check(mount is not None and mount.get("readOnly"), f"{where}: {directory} is not a read-only mount"):
        secret = volumes[mount["name"]].get("secret", {})
        check(secret.get("secretName") == secret_name, f"{where}: the {what} mount is not Secret {secret_name}")
        check(secret.get("items") == [{"key": key, "path": file}], f"{where}: the mount does not hold key {key}")


def check_vnc_auth(vmc, resource, env, mounts, volumes, by_kind, where):
    """VNC has a password from a Secret mounted as a file, unless it is off or explicitly unsafe."""
    auth = vmc["vncAuth"]
    insecure = vmc["vnc"] and auth["insecureNoAuth"]
    check((env.get("BERTH_VNC_INSECURE_NO_AUTH") == "1") == bool(insecure),
          f"{where}: BERTH_VNC_INSECURE_NO_AUTH={env.get('BERTH_VNC_INSECURE_NO_AUTH')!r}")
    path = env.get("BERTH_VNC_PASSWORD_FILE")
    secret_name = auth["existingSecret"] or f"{resource}-vnc"
    own = by_kind("Secret", f"{resource}-vnc")
    if not vmc["vnc"] or insecure:
        check(path is None, f"{where}: BERTH_VNC_PASSWORD_FILE set without VNC or with insecureNoAuth")
        check(own is None, f"{where}: a VNC Secret although VNC {'is off' if not vmc['vnc'] else 'has no auth'}")
        return
    if not check(path is not None, f"{where}: VNC is on without BERTH_VNC_PASSWORD_FILE"):
        return
    key = auth["existingSecretKey"] if auth["existingSecret"] else "password"
    check_secret_file(path, mounts, volumes, secret_name, key, "password", where)
    if auth["existingSecret"]:
        check(own is None, f"{where}: a VNC Secret made although existingSecret is set")
        return
    if check(own is not None, f"{where}: no Secret {resource}-vnc"):
        value = own.get("data", {}).get("password", "")
        if auth["password"]:
            check(base64.b64decode(value).decode() == auth["password"], f"{where}: the Secret is not vncAuth.password")
        else:
            check(value == "<random>", f"{where}: the made-up password is not marked random: {value!r}")


def check_consoles(vm, resource, c, env, mounts, volumes, by_kind, selector, where):
    """stdin/tty for `kubectl attach`; the control listener on loopback unless its Service is on,
    then on every address behind a token Secret mounted as a file; the viewer's Service."""
    console, viewer, podv = vm["console"], vm["viewer"], vm["pod"]
    check(bool(c.get("stdin")) == bool(console["stdin"]), f"{where}: stdin is {c.get('stdin')!r}")
    check(not c.get("stdinOnce"), f"{where}: stdinOnce set (the first client to detach would close it)")
    tty = console["stdin"] and console["tty"]
    check(bool(c.get("tty")) == bool(tty), f"{where}: tty is {c.get('tty')!r}, expected {tty}")
    check(not (c.get("tty") and podv["logFormat"] == "json"), f"{where}: a terminal with JSON logs")
    check(env.get("BERTH_VIEWER") == (None if viewer["enabled"] else "no"),
          f"{where}: BERTH_VIEWER={env.get('BERTH_VIEWER')!r} with viewer.enabled {viewer['enabled']}")
    port = viewer["port"]
    exposed = viewer["service"]["enabled"]
    listen = f"{'0.0.0.0' if exposed else '127.0.0.1'}:{port}"
    overridden = any(e["name"] == "BERTH_CONTROL_LISTEN" for e in podv.get("env") or [])
    check(overridden or env.get("BERTH_CONTROL_LISTEN") == listen,
          f"{where}: BERTH_CONTROL_LISTEN={env.get('BERTH_CONTROL_LISTEN')!r}, expected {listen!r}")
    check(port != int(env["BERTH_HEALTH_PORT"]), f"{where}: the viewer's port is the health port")
    token = viewer["token"]
    secret_name = token["existingSecret"] or (f"{resource}-control" if exposed else None)
    own = by_kind("Secret", f"{resource}-control")
    path = env.get("BERTH_CONTROL_TOKEN_FILE")
    if secret_name is None:
        check(path is None and own is None, f"{where}: a token Secret although berth makes its own")
    elif check(path is not None, f"{where}: no BERTH_CONTROL_TOKEN_FILE although {secret_name} holds it"):
        key = token["existingSecretKey"] if token["existingSecret"] else "token"
        check_secret_file(path, mounts, volumes, secret_name, key, "token", where)
        if token["existingSecret"]:
            check(own is None, f"{where}: a token Secret made although existingSecret is set")
        elif check(own is not None, f"{where}: no Secret {resource}-control"):
            check(own.get("data", {}).get("token") == "<random>",
                  f"{where}: the made-up token is not marked random: {own.get('data')}")
    service = by_kind("Service", f"{resource}-viewer")
    container_ports = {p["name"]: p for p in c.get("ports", [])}
    if not exposed:
        check(service is None, f"{where}: a viewer Service although viewer.service.enabled is false")
        check("viewer" not in container_ports, f"{where}: a viewer container port on loopback")
        return
    if check(service is not None, f"{where}: no Service {resource}-viewer"):
        spec = service["spec"]
        check(spec["selector"] == selector, f"{where}: viewer Service selector differs")
        check(spec["type"] == viewer["service"]["type"], f"{where}: viewer Service type {spec['type']}")
        check([(p["port"], p["targetPort"]) for p in spec["ports"]] == [(port, "viewer")],
              f"{where}: viewer Service ports {spec['ports']}")
    check(container_ports.get("viewer", {}).get("containerPort") == port, f"{where}: no viewer container port {port}")


def check_notes(notes, name, vm, values):
    """NOTES.txt tells the user exactly how to reach the VM."""
    resource = values.get("vmNamePrefix", "") + name
    host = f"{resource}-0"
    where = f"NOTES.txt, vmlist.{name}"
    expected = [f"== VM {name} (pod {host}", f"kubectl -n {NAMESPACE} logs -f {host}",
                f"kubectl -n {NAMESPACE} edit configmap {resource}-cloudconfig",
                f"http://$POD_IP:{vm['netconfig']['healthPort']}/healthz"]
    auth = vm["vmconfig"]["vncAuth"]
    if vm["vmconfig"]["vnc"]:
        expected.append(f"kubectl -n {NAMESPACE} port-forward pod/{host} 5900:5900")
        if auth["insecureNoAuth"]:
            expected.append("WARNING: VNC has NO PASSWORD")
        else:
            secret = auth["existingSecret"] or f"{resource}-vnc"
            key = auth["existingSecretKey"] if auth["existingSecret"] else "password"
            expected.append(f"kubectl -n {NAMESPACE} get secret {secret} -o jsonpath='{{.data.{key}}}' | base64 -d")
    else:
        expected.append("VNC is off")
    viewer, console = vm["viewer"], vm["console"]
    port = viewer["port"]
    expected += [f"kubectl -n {NAMESPACE} port-forward pod/{host} {port}",
                 f"http://127.0.0.1:{port}/web/{'screen' if viewer['enabled'] else 'serial'}.html"]
    token = viewer["token"]
    if token["existingSecret"] or viewer["service"]["enabled"]:
        secret = token["existingSecret"] or f"{resource}-control"
        key = (token["existingSecretKey"] if token["existingSecret"] else "token").replace(".", "\\.")
        expected.append(f"kubectl -n {NAMESPACE} get secret {secret} -o jsonpath='{{.data.{key}}}' | base64 -d")
    else:
        expected.append(f"kubectl -n {NAMESPACE} exec pod/{host} -- cat /run/berth/control-token")
    if viewer["service"]["enabled"]:
        expected.append(f"WARNING: viewer.service.enabled: the Service {resource}-viewer")
    if console["stdin"] and console["tty"]:
        expected += [f"kubectl -n {NAMESPACE} attach -it pod/{host}", "detach with ctrl-p ctrl-q"]
    elif console["stdin"]:
        expected.append(f"kubectl -n {NAMESPACE} attach -i pod/{host}")
    else:
        expected.append("The serial console is read-only here")
    ports = vm["netconfig"].get("ports") or {}
    numbers = [p["port"] if isinstance(p, dict) else p for p in ports.values()]
    if vm["netconfig"]["service"]["enabled"] and 22 in numbers:
        expected += [f"ssh <user>@{resource}.{NAMESPACE}.svc",
                     f"kubectl -n {NAMESPACE} port-forward svc/{resource} 2222:22"]
    if not (vm["netconfig"]["service"]["enabled"] and ports):
        expected.append("No Service")
    for key in vm["cloudconfig"]:
        if key not in ("format", "userdata", "metadata", "networkdata"):
            expected.append(f"WARNING: vmlist.{name}.cloudconfig.{key} is not a cloudconfig key")
    for text in expected:
        check(text in notes, f"{where}: does not say {text!r}")


def main(argv):
    argv = list(argv)
    notes = None
    if "--notes" in argv:
        at = argv.index("--notes")
        with open(argv[at + 1], encoding="utf-8") as f:
            notes = f.read()
        del argv[at:at + 2]
    rendered, chart_values, files = argv[1], argv[2], argv[3:]
    with open(chart_values, encoding="utf-8") as f:
        values = yaml.safe_load(f)
    for path in files:
        with open(path, encoding="utf-8") as f:
            values = merge(values, yaml.safe_load(f) or {})
    with open(rendered, encoding="utf-8") as f:
        manifests = [d for d in yaml.safe_load_all(f) if d]
    docs = {}
    for d in manifests:
        key = (d["kind"], d["metadata"]["name"])
        check(key not in docs, f"{key} rendered twice")
        docs[key] = d
        check(d["kind"] != "Deployment", f"{key}: a Deployment (two pods could share one pet disk)")
        check(d["metadata"].get("namespace") == NAMESPACE, f"{key}: namespace {d['metadata'].get('namespace')}")
        labels = d["metadata"].get("labels", {})
        check(labels.get("app.kubernetes.io/instance") == RELEASE, f"{key}: no instance label")
        for k, v in (values.get("commonLabels") or {}).items():
            check(labels.get(k) == v, f"{key}: commonLabels {k} missing")
    if ("Pod", f"{RELEASE}-berth-test") in docs:
        test_pod = docs[("Pod", f"{RELEASE}-berth-test")]
        check(test_pod["metadata"]["annotations"].get("helm.sh/hook") == "test", "test pod: not a test hook")
        image = test_pod["spec"]["containers"][0]["image"]
        check(("@sha256:" in image or ":" in image.rsplit("/", 1)[-1]) and not image.endswith(":latest"),
              f"test pod: image {image} is not pinned")

    startup = values["vmDefaults"]["pod"]["startupProbe"]
    check(startup["periodSeconds"] * startup["failureThreshold"] >= 600,
          "vmDefaults: the startup probe gives a first image download and boot less than 10 minutes")

    enabled = 0
    for name, given in values["vmlist"].items():
        vm = merge(values["vmDefaults"], given)
        if vm.get("enabled") is False:
            check(("StatefulSet", values.get("vmNamePrefix", "") + name) not in docs,
                  f"vmlist.{name}: disabled but rendered")
            check(notes is None or f"== VM {name} " not in notes, f"NOTES.txt: disabled VM {name} listed")
            continue
        enabled += 1
        check_vm(name, vm, docs, values, f"vmlist.{name}")
        if notes is not None:
            check_notes(notes, name, vm, values)
    kinds = sorted(k for k, _ in docs)
    check(kinds.count("StatefulSet") == enabled, f"{kinds.count('StatefulSet')} StatefulSets for {enabled} VMs")

    for message in failures:
        print(f"check_manifests: {rendered}: {message}")
    sys.exit(1 if failures else 0)


RELEASE = "demo"
NAMESPACE = "berth"

if __name__ == "__main__":
    main(sys.argv)
