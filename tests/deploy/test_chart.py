"""The Helm chart, rendered by Helm's own engine for every ci/ scenario and the example app.

Checks: values against values.schema.json, `helm lint`, every rendered object against the
Kubernetes OpenAPI schemas (kubernetes-validate, strict) or, for CRD kinds, a structural
schema; the rendered policy through the proxy's own loader; hardening, probes, lifecycle,
NetworkPolicy, monitoring and checksum behaviour.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from urllib.parse import urlsplit
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

from proxy.config.loader import compile_policy
from tests.deploy.release import (
    CHART, CI_VALUES, CUSTOM_KINDS, EXAMPLE_APP, EXAMPLE_POLICY, NAMESPACE, ROOT, Release, chart_defaults,
    copy_charts, load_values, render, render_chart, render_example_app,
)

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
KUBE_VERSIONS = ("1.29", kubernetes_validate.utils.latest_version())
SECRET_DIR = "/var/run/secrets/ramparts"
OPS_PORT = 9090

# The example app gets its policy file as text (--set-file), as the README installs it.
EXAMPLE_POLICY_TEXT = EXAMPLE_POLICY.read_text()


@pytest.fixture(scope="module")
def scenarios() -> dict[str, Release]:
    return {p.name: render_chart(load_values(p)) for p in CI_VALUES}


@pytest.fixture(scope="module")
def example_app(tmp_path_factory) -> Release:
    return render_example_app(tmp_path_factory.mktemp("app"), {"ramparts": {"policy": EXAMPLE_POLICY_TEXT}})


def all_releases(scenarios: dict[str, Release], example_app: Release) -> list[tuple[str, Release]]:
    return sorted(scenarios.items()) + [("example-app", example_app)]


def test_there_are_scenarios_for_both_modes_and_both_policy_flavors():
    names = {p.name for p in CI_VALUES}
    assert {"sidecar-values.yaml", "gateway-redis-values.yaml", "gateway-cilium-values.yaml"} <= names
    flavors = {load_values(p).get("networkPolicy", {}).get("flavor") for p in CI_VALUES}
    assert {"kubernetes", "cilium"} <= flavors


# ------------------------------------------------------------------ values and lint


@pytest.mark.parametrize("path", [CHART / "values.yaml", *CI_VALUES], ids=lambda p: p.name)
def test_values_validate_against_the_schema(path: Path):
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    merged = _merge(chart_defaults(), load_values(path))
    errors = sorted(e.message for e in jsonschema.Draft7Validator(SCHEMA).iter_errors(merged))
    assert errors == []
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(load_values(path))  # Helm's validator agrees


def test_example_app_values_validate_against_the_schema():
    app_values = load_values(EXAMPLE_APP / "values.yaml")["ramparts"]
    merged = _merge(chart_defaults(), app_values)
    merged["policy"] = EXAMPLE_POLICY_TEXT
    assert list(jsonschema.Draft7Validator(SCHEMA).iter_errors(merged)) == []


@pytest.mark.parametrize("override, where", [
    ({"securityContext": {"runAsNonRoot": False}}, "runAsNonRoot"),
    ({"securityContext": {"readOnlyRootFilesystem": False}}, "readOnlyRootFilesystem"),
    ({"securityContext": {"allowPrivilegeEscalation": True}}, "allowPrivilegeEscalation"),
    ({"securityContext": {"privileged": True}}, "privileged"),
    ({"securityContext": {"capabilities": {"drop": ["NET_RAW"]}}}, "capabilities"),
    ({"securityContext": {"capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}}}, "capabilities"),
    ({"redis": {"url": "redis://user:hunter2@redis:6379/0"}}, "redis"),
    ({"networkPolicy": {"enabled": True, "flavor": "kubernetes", "providerCIDRs": []}}, "providerCIDRs"),
    ({"networkPolicy": {"flavor": "calico"}}, "flavor"),
    ({"image": {"digest": "latest"}}, "digest"),
    ({"dataVolume": {"hostPath": {"path": "/var/lib/ramparts"}}}, "dataVolume"),
    ({"ports": {"proxy": 0, "ops": 9090}}, "proxy"),
    ({"surprise": True}, "surprise"),
])
def test_schema_refuses_unsafe_or_unknown_values(override: dict, where: str):
    values = _merge(load_values(CHART / "ci" / "sidecar-values.yaml"), override)
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmValuesError) as err:
        chart.validate_schema(values)
    assert where in str(err.value)
    with pytest.raises(helm.HelmError):  # and rendering refuses them too
        render_chart(values)


@pytest.mark.parametrize("path", CI_VALUES, ids=lambda p: p.name)
def test_helm_lint_is_clean(path: Path):
    report = helm.lint(CHART, load_values(path), strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == []


def test_helm_lint_is_clean_for_the_example_app(example_app, tmp_path):
    render_example_app(tmp_path, {"ramparts": {"policy": EXAMPLE_POLICY_TEXT}})
    app = tmp_path / "deploy" / "helm" / "example-app"  # after `helm dependency build`
    assert [p.name for p in (app / "charts").iterdir()] == ["ramparts-0.1.0.tgz"]
    report = helm.lint(app, {"ramparts": {"policy": EXAMPLE_POLICY_TEXT}}, strict=True, namespace=NAMESPACE, with_subcharts=True)
    assert report["total_charts_linted"] >= 1
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == []


# ------------------------------------------------------------- kubernetes schemas

# Structural schemas for the CRD kinds (the fields this chart sets, from the CRDs' OpenAPI).
_SELECTOR = {"type": "object", "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}}}
_CRD_SCHEMAS: dict[str, dict[str, Any]] = {
    "PodMonitor": {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "spec": {"type": "object", "required": ["selector", "podMetricsEndpoints"], "additionalProperties": False,
                     "properties": {"selector": _SELECTOR, "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": {
                         "type": "object", "required": ["port"], "additionalProperties": False,
                         "properties": {"port": {"type": "string"}, "path": {"type": "string"}, "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"}}}}}}}},
    "ServiceMonitor": {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "spec": {"type": "object", "required": ["selector", "endpoints"], "additionalProperties": False,
                     "properties": {"selector": _SELECTOR, "endpoints": {"type": "array", "minItems": 1, "items": {
                         "type": "object", "required": ["port"], "additionalProperties": False,
                         "properties": {"port": {"type": "string"}, "path": {"type": "string"}, "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"}}}}}}}},
    "PrometheusRule": {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "spec": {"type": "object", "required": ["groups"], "additionalProperties": False, "properties": {"groups": {"type": "array", "items": {
                "type": "object", "required": ["name", "rules"], "additionalProperties": False,
                "properties": {"name": {"type": "string"}, "rules": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["alert", "expr"], "additionalProperties": False,
                    "properties": {"alert": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}, "expr": {"type": "string"},
                                   "for": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                                   "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                   "annotations": {"type": "object", "additionalProperties": {"type": "string"}}}}}}}}}}}},
    "CiliumNetworkPolicy": {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "cilium.io/v2"},
            "spec": {"type": "object", "required": ["endpointSelector", "egress"], "additionalProperties": False, "properties": {
                "endpointSelector": _SELECTOR,
                "egress": {"type": "array", "minItems": 2, "items": {
                    "type": "object", "additionalProperties": False, "minProperties": 2,
                    "properties": {
                        "toEndpoints": {"type": "array", "items": _SELECTOR},
                        "toFQDNs": {"type": "array", "items": {"type": "object", "additionalProperties": False,
                                                              "properties": {"matchName": {"type": "string", "pattern": "^[a-z0-9.-]+$"}}}},
                        "toCIDR": {"type": "array", "items": {"type": "string"}},
                        "toPorts": {"type": "array", "items": {"type": "object", "additionalProperties": False, "properties": {
                            "ports": {"type": "array", "items": {"type": "object", "required": ["port"], "additionalProperties": False, "properties": {
                                "port": {"type": "string", "pattern": "^[0-9]{1,5}$"}, "protocol": {"enum": ["TCP", "UDP", "ANY"]}}}},
                            "rules": {"type": "object"}}}}}}}}}}},
}


def validate_object(doc: dict[str, Any], where: str, namespace: str = NAMESPACE) -> None:
    """Strict Kubernetes OpenAPI validation (1.29 and latest) or, for CRD kinds, the structural schema."""
    where = f"{where}: {doc['kind']}/{doc['metadata']['name']}"
    if doc["kind"] in CUSTOM_KINDS:
        errors = [e.message for e in jsonschema.Draft7Validator(_CRD_SCHEMAS[doc["kind"]]).iter_errors(doc)]
        assert errors == [], where
    else:
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                pytest.fail(f"{where} (Kubernetes {version}): {'.'.join(map(str, e.path))}: {e.message}")
    assert doc["metadata"].get("namespace", namespace) == namespace, where


def test_every_rendered_object_validates(scenarios, example_app):
    checked = 0
    for name, release in all_releases(scenarios, example_app):
        assert release.docs, name
        for doc in release.docs:
            validate_object(doc, name)
            checked += 1
    assert checked >= 20


def test_each_scenario_renders_the_objects_it_asks_for(scenarios, example_app):
    kinds = {name: sorted(d["kind"] for d in r.docs) for name, r in all_releases(scenarios, example_app)}
    assert kinds["sidecar-values.yaml"] == ["ConfigMap", "NetworkPolicy", "PodMonitor", "PrometheusRule", "Secret"]
    assert kinds["gateway-redis-values.yaml"] == [
        "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "NetworkPolicy", "NetworkPolicy", "PodDisruptionBudget",
        "PrometheusRule", "Service", "ServiceAccount", "ServiceMonitor"]
    # one replica: no PodDisruptionBudget (it would block every node drain)
    assert kinds["gateway-cilium-values.yaml"] == [
        "CiliumNetworkPolicy", "ConfigMap", "Deployment", "NetworkPolicy", "Secret", "Secret", "Service", "ServiceAccount"]
    assert kinds["existing-configmap-values.yaml"] == ["CiliumNetworkPolicy"]
    assert kinds["example-app"] == ["CiliumNetworkPolicy", "ConfigMap", "Deployment", "PodMonitor"]


# ----------------------------------------------------------------- the policy file


def test_rendered_policy_loads_with_the_proxys_own_loader(scenarios, example_app):
    for name, release in all_releases(scenarios, example_app):
        if release.of_kind("ConfigMap"):
            compiled = compile_policy(release.policy_text().encode(), None, resolve_secrets=False)
            assert compiled.model.version == 1, name


def test_a_policy_file_given_as_text_is_kept_byte_for_byte(example_app):
    text = (ROOT / "policies" / "example.yaml").read_text()
    release = render_chart({"policy": text, "redis": {"singleReplica": True}})
    assert release.policy_text() == text
    assert example_app.policy_text() == EXAMPLE_POLICY_TEXT
    compile_policy(release.policy_text().encode(), None, resolve_secrets=False)


def test_redis_url_becomes_the_store_of_budget_stages(scenarios):
    policy = yaml.safe_load(scenarios["gateway-redis-values.yaml"].policy_text())
    stores = {s["type"]: s.get("store") for s in policy["pipeline"]}
    assert stores["budget"] == "redis://redis-master.platform.svc:6379/0"
    assert "store" not in [k for s in policy["pipeline"] if s["type"] != "budget" for k in s]


def test_a_per_pod_budget_store_is_refused_unless_single_replica():
    values = load_values(CHART / "ci" / "gateway-redis-values.yaml")
    values["redis"] = {}
    with pytest.raises(helm.HelmRenderError, match="redis.url"):
        render_chart(values)
    values["redis"] = {"singleReplica": True}
    policy = yaml.safe_load(render_chart(values).policy_text())
    (budget,) = [s for s in policy["pipeline"] if s["type"] == "budget"]
    assert "store" not in budget  # the embedded store, accepted because one pod serves
    # a policy file (text) is never rewritten: it must name the store itself
    values = load_values(CHART / "ci" / "gateway-redis-values.yaml")
    values["policy"] = yaml.safe_dump(values["policy"])
    with pytest.raises(helm.HelmRenderError, match="write `store: redis://"):
        render_chart(values)
    # a stage that names a per-pod store itself is not overridden by redis.url, and the error says so
    text = (ROOT / "policies" / "example.yaml").read_text()  # store: embedded, written out
    with pytest.raises(helm.HelmRenderError, match=re.escape('rate_limit stage names the per-pod store "embedded": write `store: redis://r:6379/0`')):
        render_chart({"policy": text, "redis": {"url": "redis://r:6379/0"}})


def test_no_policy_no_render():
    with pytest.raises(helm.HelmRenderError, match="set `policy`"):
        render_chart({})
    with pytest.raises(helm.HelmRenderError, match="not valid YAML"):
        render_chart({"policy": "version: [1"})


def check_secrets_reach_the_container(release: Release, name: str) -> None:
    for spec, container in release.ramparts_containers():
        policy = yaml.safe_load(release.policy_text())
        env_names, file_paths = _secret_refs(policy)
        env_from = [e["secretRef"]["name"] for e in container.get("envFrom", [])]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        if env_names:
            assert len(env_from) == 1, (name, "the policy names environment secrets but none reach the container")
            managed = _managed_secret(release, env_from[0])
            if managed is not None:  # chart-made Secret: every name must be a key of it
                assert env_names <= set(managed), (name, env_names - set(managed))
        if file_paths:
            assert all(p.startswith(SECRET_DIR + "/") for p in file_paths), name
            assert SECRET_DIR in mounts, (name, "the policy names secret files but no Secret is mounted")
            volume = next(v for v in spec["volumes"] if v["name"] == mounts[SECRET_DIR])
            managed = _managed_secret(release, volume["secret"]["secretName"])
            if managed is not None:
                assert {p.rsplit("/", 1)[1] for p in file_paths} <= set(managed), name


def test_every_secret_the_policy_names_reaches_the_container(scenarios, example_app):
    for name, release in all_releases(scenarios, example_app):
        check_secrets_reach_the_container(release, name)


# ------------------------------------------------------------ containers and pods


def test_containers_are_hardened(scenarios, example_app):
    seen = 0
    for name, release in all_releases(scenarios, example_app):
        for spec, c in release.ramparts_containers():
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] >= 1000, name
            assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
            assert c["resources"]["requests"]["memory"] and c["resources"]["limits"]["memory"], name
            # only the data volume and /tmp are writable; nothing comes from the host
            writable = {m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")}
            assert writable == {"/var/lib/ramparts", "/tmp"}, name
            assert not any("hostPath" in v for v in spec["volumes"]), name
            assert spec.get("automountServiceAccountToken") is False, name
            assert not c.get("env") or all("value" not in e or "KEY" not in e["name"] for e in c["env"]), name
            seen += 1
    assert seen == 3  # two gateways and the example app's sidecar


def test_probes_use_the_ops_port(scenarios, example_app):
    for name, release in all_releases(scenarios, example_app):
        for _, c in release.ramparts_containers():
            assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": OPS_PORT}, name
            assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": OPS_PORT}, name
            # "started" means ready: a native sidecar's app starts only after this passes
            assert c["startupProbe"]["httpGet"] == {"path": "/readyz", "port": OPS_PORT}, name
            assert f"0.0.0.0:{OPS_PORT}" in c["args"], name


def test_autoscaled_gateway_leaves_replicas_to_the_hpa(scenarios):
    release = scenarios["gateway-redis-values.yaml"]
    deployment, hpa = release.one("Deployment"), release.one("HorizontalPodAutoscaler")
    assert "replicas" not in deployment["spec"]  # a fixed count would fight the HPA on every upgrade
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    assert release.one("PodDisruptionBudget")["spec"]["minAvailable"] == 2
    # several replicas: budgets must be shared
    assert yaml.safe_load(release.policy_text())["pipeline"][2]["store"].startswith("redis://")
    assert scenarios["gateway-cilium-values.yaml"].one("Deployment")["spec"]["replicas"] == 1


def test_gateway_grace_period_covers_prestop_and_drain(scenarios):
    for name in ("gateway-redis-values.yaml", "gateway-cilium-values.yaml"):
        release = scenarios[name]
        values = _merge(chart_defaults(), release.values)
        drain = yaml.safe_load(release.policy_text()).get("server", {}).get("drain_timeout_s", 25)
        deployment = release.one("Deployment")
        spec = deployment["spec"]["template"]["spec"]
        (c,) = spec["containers"]
        pre_stop = int(c["lifecycle"]["preStop"]["exec"]["command"][1])
        assert c["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
        assert pre_stop == values["lifecycle"]["preStopSleepSeconds"] > 0
        assert spec["terminationGracePeriodSeconds"] == pre_stop + drain + values["lifecycle"]["shutdownMarginSeconds"]
        assert spec["terminationGracePeriodSeconds"] > pre_stop + drain
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        assert "0.0.0.0:8080" in c["args"]


def test_sidecar_is_a_native_sidecar_on_localhost(example_app):
    deployment = example_app.one("Deployment")
    spec = deployment["spec"]["template"]["spec"]
    (sidecar,) = spec["initContainers"]
    assert sidecar["name"] == "ramparts" and sidecar["restartPolicy"] == "Always"
    assert "127.0.0.1:8080" in sidecar["args"]
    assert "lifecycle" not in sidecar  # stops after the app: no endpoint to deregister
    (app,) = spec["containers"]
    assert {"name": "OPENAI_BASE_URL", "value": "http://127.0.0.1:8080/v1"} in app["env"]
    assert "envFrom" not in app  # provider keys reach the sidecar only
    app_values = load_values(EXAMPLE_APP / "values.yaml")
    margin = chart_defaults()["lifecycle"]["shutdownMarginSeconds"]
    drain = yaml.safe_load(example_app.policy_text())["server"]["drain_timeout_s"]
    assert spec["terminationGracePeriodSeconds"] == app_values["appShutdownSeconds"] + drain + margin
    volumes = {v["name"] for v in spec["volumes"]}
    assert {m["name"] for m in sidecar["volumeMounts"]} <= volumes
    assert example_app.one("ConfigMap")["metadata"]["name"] == next(
        v["configMap"]["name"] for v in spec["volumes"] if v["name"] == "ramparts-policy")


def test_sidecar_values_stay_short():
    """The README promises an app gets the sidecar in under 20 lines of values."""
    text = (EXAMPLE_APP / "values.yaml").read_text()
    block = text[text.index("\nramparts:"):].strip().splitlines()
    assert len(block) < 20
    assert "\n".join(block) in (ROOT / "README.md").read_text()


def test_policy_checksum_rolls_pods_exactly_when_the_policy_changes(scenarios, tmp_path):
    release = scenarios["gateway-redis-values.yaml"]
    annotation = release.one("Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/ramparts-policy"]
    assert annotation == hashlib.sha256(release.policy_text().encode()).hexdigest()
    again = render_chart(release.values)
    assert again.one("Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/ramparts-policy"] == annotation
    changed = json.loads(json.dumps(release.values))
    changed["policy"]["tenants"]["acme"]["plan"] = "pro"
    changed["policy"]["plans"]["pro"]["max_tokens_per_request"] = 4000
    other = render_chart(changed)
    assert other.one("Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/ramparts-policy"] != annotation
    # the app chart computes the same checksum as the ConfigMap this chart renders
    app = render_example_app(tmp_path, {"ramparts": {"policy": EXAMPLE_POLICY_TEXT}})
    pod = app.one("Deployment")["spec"]["template"]["metadata"]
    assert pod["annotations"]["checksum/ramparts-policy"] == hashlib.sha256(app.policy_text().encode()).hexdigest()


def test_secret_values_roll_pods_and_existing_secrets_are_referenced(scenarios):
    sidecar_values = load_values(CHART / "ci" / "gateway-cilium-values.yaml")
    a = render_chart(sidecar_values).one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    sidecar_values["secrets"]["env"]["OPENAI_API_KEY"] = "sk-rotated"
    b = render_chart(sidecar_values).one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert a["checksum/ramparts-secrets"] != b["checksum/ramparts-secrets"]
    gw = scenarios["gateway-redis-values.yaml"]
    assert not gw.of_kind("Secret")  # existing Secrets: the chart creates none
    (_, c), = gw.ramparts_containers()
    assert c["envFrom"] == [{"secretRef": {"name": "ramparts-provider-keys"}}]


# ------------------------------------------------------------------ NetworkPolicy


def test_kubernetes_networkpolicy_allows_dns_providers_and_redis_only(scenarios):
    for name, selector in (("sidecar-values.yaml", {"ramparts.dev/sidecar": "edge-ramparts"}),
                           ("gateway-redis-values.yaml", None)):
        release = scenarios[name]
        values = release.values
        np = release.one("NetworkPolicy", "-egress")
        policy = yaml.safe_load(release.policy_text())
        if selector is None:
            selector = release.one("Deployment")["spec"]["selector"]["matchLabels"]
        assert np["spec"]["podSelector"]["matchLabels"] == selector
        assert np["spec"]["policyTypes"] == ["Egress"]
        rules = np["spec"]["egress"]
        dns = rules[0]
        assert sorted((p["protocol"], p["port"]) for p in dns["ports"]) == [("TCP", 53), ("UDP", 53)]
        providers = rules[1]
        assert [t["ipBlock"]["cidr"] for t in providers["to"]] == values["networkPolicy"]["providerCIDRs"]
        wanted = {int(a.rsplit(":", 1)[1]) for a in policy["egress"]["allow"]}
        if policy["auth"].get("jwks_url"):
            wanted.add(443)
        assert {p["port"] for p in providers["ports"]} == wanted
        extra = values["networkPolicy"].get("extraEgress", [])
        redis = 1 if values.get("redis", {}).get("url") else 0
        assert len(rules) == 2 + redis + len(extra)
        if redis:
            assert rules[2]["ports"] == [{"protocol": "TCP", "port": 6379}]
            assert rules[2]["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "platform"}
        if extra:
            assert rules[-len(extra):] == extra


def test_cilium_policy_hosts_are_the_policys_egress_allow_list(scenarios, example_app):
    for name, release in (("gateway-cilium-values.yaml", scenarios["gateway-cilium-values.yaml"]), ("example-app", example_app)):
        cnp = release.one("CiliumNetworkPolicy")
        policy = yaml.safe_load(release.policy_text())
        allowed = set()
        wanted = set(policy["egress"]["allow"])
        if policy["auth"].get("jwks_url"):  # the proxy's only other outbound call
            jwks = urlsplit(policy["auth"]["jwks_url"])
            wanted.add(f"{jwks.hostname}:{jwks.port or (443 if jwks.scheme == 'https' else 80)}")
        for rule in cnp["spec"]["egress"][1:]:
            port = rule["toPorts"][0]["ports"][0]["port"]
            for fqdn in rule.get("toFQDNs", []):
                allowed.add(f"{fqdn['matchName']}:{port}")
            for cidr in rule.get("toCIDR", []):
                if port != "6379":
                    allowed.add(f"{cidr.split('/')[0]}:{port}")
        assert allowed == wanted, name
        assert cnp["spec"]["egress"][0]["toPorts"][0]["rules"] == {"dns": [{"matchPattern": "*"}]}


def test_gateway_ingress_admits_clients_and_prometheus_only(scenarios):
    release = scenarios["gateway-redis-values.yaml"]
    np = release.one("NetworkPolicy", "-ingress")
    assert np["spec"]["policyTypes"] == ["Ingress"]
    (clients, scrape) = np["spec"]["ingress"]
    assert clients["from"] == release.values["networkPolicy"]["clients"]
    assert clients["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert scrape["ports"] == [{"protocol": "TCP", "port": OPS_PORT}]


@pytest.mark.parametrize("override, message", [
    ({"networkPolicy": {"providerCIDRs": []}}, "providerCIDRs"),
    ({"redis": {"url": "redis://r:6379/0"}}, "redis.cidrs or redis.podLabels"),
    ({"policy": {"egress": {"allow": []}}}, "egress.allow is empty"),
    # a Redis store the NetworkPolicy knows nothing about would be blocked: every request a 503
    ({"policy": {"pipeline": [{"type": "tenant"}, {"type": "budget", "store": "redis://x:6379/0"}]}},
     "budget stage uses Redis (x:6379): set redis.url and redis.cidrs or redis.podLabels"),
    ({"redis": {"url": "redis://r:6379/0", "podLabels": {"app": "redis"}},
      "policy": {"pipeline": [{"type": "tenant"}, {"type": "rate_limit", "store": "redis://x:6379/0"}]}},
     "rate_limit stage uses Redis at x:6379 but redis.url says r:6379"),
])
def test_networkpolicy_misconfiguration_fails_the_render(override, message):
    values = _merge(load_values(CHART / "ci" / "sidecar-values.yaml"), override)
    with pytest.raises(helm.HelmError, match=re.escape(message)):
        render_chart(values)


# ------------------------------------------------------------------ monitoring


def test_monitors_scrape_the_ops_port(scenarios, example_app):
    pm = example_app.one("PodMonitor")
    pod = example_app.one("Deployment")["spec"]["template"]
    assert pm["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (sidecar,) = pod["spec"]["initContainers"]
    assert {"name": "ramparts-ops", "containerPort": OPS_PORT, "protocol": "TCP"} in sidecar["ports"]
    assert pm["spec"]["podMetricsEndpoints"][0]["port"] == "ramparts-ops"
    gw = scenarios["gateway-redis-values.yaml"]
    sm, svc = gw.one("ServiceMonitor"), gw.one("Service")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert {"name": "ops", "port": OPS_PORT, "targetPort": "ops", "protocol": "TCP"} in svc["spec"]["ports"]
    assert sm["spec"]["endpoints"][0]["port"] == "ops"
    assert svc["spec"]["selector"].items() <= gw.one("Deployment")["spec"]["template"]["metadata"]["labels"].items()


# ------------------------------------------------- defaults and documented commands


def test_defaults_render_only_the_policy_configmap():
    """Gateway, NetworkPolicy, Secrets and every Prometheus Operator object are opt-in."""
    release = render_chart({"policy": EXAMPLE_POLICY_TEXT})
    assert [d["kind"] for d in release.docs] == ["ConfigMap"]
    defaults = chart_defaults()
    assert defaults["gateway"]["enabled"] is False and defaults["networkPolicy"]["enabled"] is False
    assert {k: v["enabled"] for k, v in defaults["metrics"].items()} == {
        "podMonitor": False, "serviceMonitor": False, "prometheusRule": False}
    # the monitors follow the mode: no ServiceMonitor without a gateway, no PodMonitor with one
    on = {"podMonitor": {"enabled": True}, "serviceMonitor": {"enabled": True}}
    sidecar = render_chart({"policy": EXAMPLE_POLICY_TEXT, "metrics": on})
    assert sorted(d["kind"] for d in sidecar.docs) == ["ConfigMap", "PodMonitor"]
    gateway = render_chart({"policy": EXAMPLE_POLICY_TEXT, "metrics": on, "gateway": {"enabled": True}})
    assert "PodMonitor" not in {d["kind"] for d in gateway.docs} and len(gateway.of_kind("ServiceMonitor")) == 1


def _section(text: str, name: str) -> str:
    start = text.index(f"<!-- section:{name} -->")
    end = text.find("<!-- section:", start + 1)
    return text[start:end if end > 0 else None]


def documented_commands() -> list[tuple[str, list[str]]]:
    """Every `helm ...` command in the sh blocks of the README's deploy section and of the
    operations guide, as argv (continuation lines joined)."""
    sources = {"README.md": _section((ROOT / "README.md").read_text(), "deploy"),
               "docs/operations.md": (ROOT / "docs" / "operations.md").read_text()}
    out = []
    for where, text in sources.items():
        for block in re.findall(r"```sh\n(.*?)```", text, re.S):
            for line in block.replace("\\\n", " ").splitlines():
                argv = shlex.split(line, comments=True)
                if argv and argv[0] == "helm":
                    out.append((where, argv))
    return out


def _install(argv: list[str], charts: Path) -> tuple[Release, str]:
    """Render one `helm install NAME CHART [flags]` like Helm would: --set/--set-file parsed by
    Helm's own parsers, merged left to right. Flags the test does not know fail it."""
    assert argv[:2] == ["helm", "install"], argv
    name, chart, flags = argv[2], argv[3], argv[4:]
    assert chart.startswith("deploy/helm/"), chart
    values: dict[str, Any] = {}
    namespace = "default"
    i = 0
    while i < len(flags):
        flag, arg = flags[i], flags[i + 1]
        if flag in ("-n", "--namespace"):
            namespace = arg
        elif flag == "--set":
            values = _merge(values, helm.parse_set_string(arg))
        elif flag == "--set-file":
            key, _, path = arg.partition("=")
            assert (ROOT / path).is_file(), f"--set-file {arg}: no such file in the repository"
            values = _merge(values, helm.parse_set_file(f"{key}={ROOT / path}"))
        else:
            pytest.fail(f"{' '.join(argv)}: flag {flag} is not checked by this test")
        i += 2
    return render(charts / chart.removeprefix("deploy/helm/"), values, name, namespace), namespace


def test_documented_install_commands_render_valid_manifests(tmp_path):
    """The README's and the guide's `helm install` lines, exactly as written (after the
    README's `helm dependency build`, done by Helm's own code on a copy of deploy/helm)."""
    commands = documented_commands()
    readme = [argv for where, argv in commands if where == "README.md"]
    assert ["helm", "dependency", "build", "deploy/helm/example-app"] in readme
    assert readme.index(["helm", "dependency", "build", "deploy/helm/example-app"]) < next(
        i for i, argv in enumerate(readme) if argv[:2] == ["helm", "install"] and argv[3] == "deploy/helm/example-app")
    charts = copy_charts(tmp_path)
    installed = set()
    for where, argv in commands:
        if argv[:3] == ["helm", "dependency", "build"]:
            assert (ROOT / argv[3] / "Chart.yaml").is_file(), argv
            continue
        try:
            release, namespace = _install(argv, charts)
        except helm.HelmError as e:
            pytest.fail(f"{where}: `{shlex.join(argv)}` does not render: {e}")
        label = f"{where}: {shlex.join(argv)}"
        for doc in release.docs:
            validate_object(doc, label, namespace)
        compile_policy(release.policy_text().encode(), None, resolve_secrets=False)
        containers = list(release.ramparts_containers())
        assert containers, label
        check_secrets_reach_the_container(release, label)
        installed.add((where, argv[3], bool(release.of_kind("Service"))))
    # both files show the sidecar app and the gateway
    assert installed >= {("README.md", "deploy/helm/example-app", False), ("README.md", "deploy/helm/ramparts", True),
                         ("docs/operations.md", "deploy/helm/example-app", False), ("docs/operations.md", "deploy/helm/ramparts", True)}


def test_readme_pod_template_snippet_renders_the_same_sidecar(example_app, tmp_path):
    """The README's pod-template lines, put into an app chart as written, render a valid
    Deployment whose sidecar, volumes, labels and annotations equal the example app's."""
    readme = _section((ROOT / "README.md").read_text(), "deploy")
    snippet = next(b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "ramparts.sidecar.initContainer" in b)
    assert len(snippet.strip().splitlines()) <= 10
    snippet = re.sub(r"containers: \[\.\.\.\].*", 'containers: [{name: app, image: "example/chat-app:1.0.0"}]', snippet)
    app = copy_charts(tmp_path) / EXAMPLE_APP.name
    (app / "templates" / "deployment.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}-app\nspec:\n"
        "  selector:\n    matchLabels: {ramparts.dev/sidecar: {{ .Release.Name }}-ramparts}\n  template:\n" + snippet)
    release = render(app, {"ramparts": {"policy": EXAMPLE_POLICY_TEXT}}, example_app.name)
    for doc in release.docs:
        validate_object(doc, "README snippet")
    mine, theirs = release.one("Deployment")["spec"]["template"], example_app.one("Deployment")["spec"]["template"]
    assert mine["spec"]["initContainers"] == theirs["spec"]["initContainers"]
    assert mine["spec"]["volumes"] == theirs["spec"]["volumes"]
    assert mine["metadata"]["annotations"] == theirs["metadata"]["annotations"]
    assert mine["metadata"]["labels"].items() <= theirs["metadata"]["labels"].items()
    assert mine["spec"]["terminationGracePeriodSeconds"] == theirs["spec"]["terminationGracePeriodSeconds"]


# ------------------------------------------------------------------ helpers


def _merge(base: dict, over: dict) -> dict:
    out = json.loads(json.dumps(base))
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _secret_refs(node: Any) -> tuple[set[str], set[str]]:
    envs: set[str] = set()
    files: set[str] = set()
    if isinstance(node, dict):
        if set(node) == {"from_env"}:
            envs.add(node["from_env"])
        elif set(node) == {"from_file"}:
            files.add(node["from_file"])
        else:
            for v in node.values():
                e, f = _secret_refs(v)
                envs |= e
                files |= f
    elif isinstance(node, list):
        for v in node:
            e, f = _secret_refs(v)
            envs |= e
            files |= f
    return envs, files


def _managed_secret(release: Release, name: str) -> dict[str, str] | None:
    for s in release.of_kind("Secret"):
        if s["metadata"]["name"] == name:
            return s["data"]
    return None
