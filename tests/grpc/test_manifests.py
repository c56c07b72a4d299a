"""Deployment files parse, and every kustomization names files that exist (checked offline)."""

import pathlib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def test_every_yaml_file_parses_and_names_its_kind():
    files = sorted(list((ROOT / "k8s").rglob("*.yaml")) + list((ROOT / "infra").glob("*.y*ml")))
    assert files, "no manifests found"
    for path in files:
        for doc in _docs(path):
            assert isinstance(doc, dict), path
            if "k8s" in path.parts and path.name != "kustomization.yaml":
                assert doc.get("apiVersion") and doc.get("kind"), f"{path}: no apiVersion/kind"


def test_kustomizations_reference_existing_files():
    for kust in (ROOT / "k8s").rglob("kustomization.yaml"):
        (doc,) = _docs(kust)
        refs = list(doc.get("resources", [])) + [p if isinstance(p, str) else p.get("path") for p in doc.get("patches", [])]
        for ref in filter(None, refs):
            target = (kust.parent / ref).resolve()
            assert target.exists(), f"{kust}: {ref} does not exist"


def test_ledger_deployment_probes_grpc_health_and_reads_secrets_from_secrets():
    (dep,) = [d for d in _docs(ROOT / "k8s/base/deployment.yaml") if d["kind"] == "Deployment"]
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert container["args"][:2] == ["serve", "ledger"] or container.get("command", [])[-2:] == ["serve", "ledger"]
    assert container["readinessProbe"]["grpc"]["port"] == 50051
    env = {e["name"]: e for e in container.get("env", [])}
    assert "secretKeyRef" in env["PAYMESH_DATABASE_URL"]["valueFrom"]
