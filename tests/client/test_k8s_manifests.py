"""The Kubernetes deployment of the vLLM resolver (docker/k8s/), checked offline.

kubernetes-validate checks each core resource against the Kubernetes API's own schemas
(bundled with it, strict: an unknown field is an error). The router chart's values are
not a Kubernetes resource; they are checked against the manifest they must agree with.
"""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from tests.client.conftest import REPO_ROOT

K8S = REPO_ROOT / "docker" / "k8s"
MANIFEST = K8S / "vllm-pefthub-resolver.yaml"


def _documents() -> list[dict]:
    return [doc for doc in yaml.safe_load_all(MANIFEST.read_text()) if doc]


def _one(kind: str) -> dict:
    (doc,) = [d for d in _documents() if d["kind"] == kind]
    return doc


def _validate(doc: dict) -> None:
    kubernetes_validate.validate(doc, latest_version(), strict=True)


def test_every_resource_matches_the_kubernetes_schema():
    docs = _documents()
    assert sorted(d["kind"] for d in docs) == sorted(
        ["Secret", "PersistentVolumeClaim", "Deployment", "Service", "NetworkPolicy"]
    )
    for doc in docs:
        _validate(doc)


@pytest.mark.parametrize(
    "break_it",
    [
        lambda c: c["ports"][0].update(containerPort="8000"),  # a string where the API wants a number
        lambda c: c.update(enviroment=c.pop("env")),  # a misspelt field, ignored by a lax check
    ],
    ids=["wrong-type", "unknown-field"],
)
def test_the_schema_check_catches_a_broken_deployment(break_it):
    deployment = copy.deepcopy(_one("Deployment"))
    break_it(deployment["spec"]["template"]["spec"]["containers"][0])
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(deployment)


def test_the_deployment_enables_the_plugin_with_its_secret_and_cache():
    pod = _one("Deployment")["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"]["value"] == "true"
    assert "pefthub" in env["VLLM_PLUGINS"]["value"].split(",")
    assert env["PEFTHUB_ENDPOINT"]["value"].startswith("https://")
    assert "--enable-lora" in container["args"]

    token = env["PEFTHUB_TOKEN"]["valueFrom"]["secretKeyRef"]
    secret = _one("Secret")
    assert token["name"] == secret["metadata"]["name"] and token["key"] in secret["stringData"]

    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    cache_volume = volumes[mounts[env["PEFTHUB_RESOLVER_CACHE"]["value"]]]
    assert cache_volume["persistentVolumeClaim"]["claimName"] == _one("PersistentVolumeClaim")["metadata"]["name"]


def test_the_service_and_network_policy_select_the_vllm_pods():
    pod_labels = _one("Deployment")["spec"]["template"]["metadata"]["labels"]
    (container,) = _one("Deployment")["spec"]["template"]["spec"]["containers"]
    port_names = {p["name"] for p in container["ports"]}
    service = _one("Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    policy = _one("NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()


def test_the_router_values_route_to_those_pods_with_lora_affinity():
    values = yaml.safe_load((K8S / "epp-values.yaml").read_text())["router"]
    pod = _one("Deployment")["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert values["modelServers"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert {p["number"] for p in values["modelServers"]["targetPorts"]} == {
        p["containerPort"] for p in container["ports"]
    }

    epp = values["epp"]
    config = yaml.safe_load(epp["pluginsCustomConfig"][epp["pluginsConfigFile"]])
    assert config["kind"] == "EndpointPickerConfig"
    declared = {p.get("name", p["type"]): p["type"] for p in config["plugins"]}
    (default,) = [p for p in config["schedulingProfiles"] if p["name"] == "default"]
    used = {declared[p["pluginRef"]] for p in default["plugins"]}
    assert "lora-affinity-scorer" in used
