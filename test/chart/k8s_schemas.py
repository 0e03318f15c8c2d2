#!/usr/bin/env python3
"""Strict, standalone JSON schemas for kubeconform, made from a Kubernetes swagger.json.

usage: k8s_schemas.py SWAGGER_JSON OUT_DIR apiVersion/Kind...   (e.g. apps/v1/StatefulSet v1/Pod)

Writes OUT_DIR/<kind>-<group>-<version>.json (core: <kind>-<version>.json), the names kubeconform's
`-schema-location DIR/{{.ResourceKind}}{{.KindSuffix}}.json` asks for. Each file is one
definition with every $ref expanded (kubeconform compiles each file on its own) and made strict the
way `kubectl --validate=strict` and kubeconform's -strict schemas are: an object that lists its
properties allows no others. As the API server does, int-or-string fields take either, and
quantities take a string or a number. What the generator does is the instrumenta/yannh
openapi2jsonschema transformation, re-done here in a few lines so that it runs offline.
"""
import json
import os
import sys

INT_OR_STRING = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"


def expand(node, definitions, stack):
    """node with $refs replaced by the (expanded) definitions; a cycle becomes {} (anything)."""
    if isinstance(node, list):
        return [expand(item, definitions, stack) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name in stack:
            return {}
        if name == QUANTITY:
            return {"oneOf": [{"type": "string"}, {"type": "number"}]}
        return expand(definitions[name], definitions, stack | {name})
    if node.get("format") == "int-or-string":
        return dict(INT_OR_STRING)
    out = {}
    for key, value in node.items():
        if key == "description":
            continue  # keeps the files small; kubeconform's messages name the path instead
        if key == "properties":
            out[key] = {name: expand(prop, definitions, stack) for name, prop in value.items()}
        else:
            out[key] = expand(value, definitions, stack)
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def file_name(api_version, kind):
    group, _, version = api_version.rpartition("/")
    suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
    return f"{kind.lower()}{suffix.lower()}.json"


def main(argv):
    if len(argv) < 4:
        sys.exit(__doc__)
    spec_path, out_dir, wanted = argv[1], argv[2], argv[3:]
    with open(spec_path, encoding="utf-8") as f:
        definitions = json.load(f)["definitions"]
    by_gvk = {}
    for name, definition in definitions.items():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            api_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
            by_gvk[f"{api_version}/{gvk['kind']}"] = name
    os.makedirs(out_dir, exist_ok=True)
    for item in wanted:
        if item not in by_gvk:
            sys.exit(f"k8s_schemas: {item} is not a kind of {spec_path}")
        api_version, _, kind = item.rpartition("/")
        schema = expand(definitions[by_gvk[item]], definitions, frozenset({by_gvk[item]}))
        schema["$schema"] = "http://json-schema.org/draft-04/schema#"
        # apiVersion and kind must be the ones this file is for.
        schema["properties"]["apiVersion"] = {"enum": [api_version]}
        schema["properties"]["kind"] = {"enum": [kind]}
        schema.setdefault("required", [])
        schema["required"] = sorted(set(schema["required"]) | {"apiVersion", "kind"})
        path = os.path.join(out_dir, file_name(api_version, kind))
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(schema, f, separators=(",", ":"), sort_keys=True)
        os.replace(path + ".tmp", path)
        print(f"k8s_schemas: {path}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv)
