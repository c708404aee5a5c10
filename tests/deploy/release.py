"""Render the Helm chart offline with Helm's own Go engine (helm-python-sdk, no helm binary).

A `Release` is what `helm template` would print for one values scenario, parsed into
Kubernetes objects, with small lookups the tests share.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "ramparts"
EXAMPLE_APP = ROOT / "deploy" / "helm" / "example-app"
EXAMPLE_POLICY = EXAMPLE_APP / "policy.yaml"  # what the README installs the example app with
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
NAMESPACE = "shop"

# The Prometheus Operator and Cilium kinds have no schema in kubernetes-validate.
CUSTOM_KINDS = {"PodMonitor", "ServiceMonitor", "PrometheusRule", "CiliumNetworkPolicy"}


@dataclass
class Release:
    name: str
    values: dict[str, Any]  # the user's values (before Helm merges the chart defaults)
    docs: list[dict[str, Any]] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, name_suffix: str = "") -> dict[str, Any]:
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"].endswith(name_suffix)]
        assert len(found) == 1, f"expected one {kind} *{name_suffix}, got {[d['metadata']['name'] for d in found]}"
        return found[0]

    def pod_specs(self) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """(pod template metadata, pod spec) of every workload."""
        for d in self.docs:
            if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet"):
                yield d["spec"]["template"]["metadata"], d["spec"]["template"]["spec"]

    def ramparts_containers(self) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """(pod spec, container) for every Ramparts container, sidecar or gateway."""
        for _, spec in self.pod_specs():
            for c in spec.get("initContainers", []) + spec.get("containers", []):
                if c["name"] == "ramparts":
                    yield spec, c

    def policy_text(self) -> str:
        return self.one("ConfigMap", "-policy")["data"]["policy.yaml"]


def _parse(rendered: dict[str, str]) -> list[dict[str, Any]]:
    docs = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def render_chart(values: dict[str, Any], name: str = "edge") -> Release:
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values=values, name=name, namespace=NAMESPACE, is_install=True)
    return Release(name=name, values=values, docs=_parse(rendered))


def copy_charts(workdir: Path) -> Path:
    """deploy/helm copied under `workdir` (same layout, so file://../ramparts resolves), with
    the example app's dependency built by Helm's own `helm dependency build`: this chart
    packaged into example-app/charts/. Returns the copy of deploy/helm."""
    helm_dir = workdir / "deploy" / "helm"
    if not helm_dir.exists():
        shutil.copytree(CHART.parent, helm_dir, ignore=shutil.ignore_patterns("charts", "Chart.lock", "__pycache__"))
        helm.dependency_build(helm_dir / EXAMPLE_APP.name)
    return helm_dir


def render_example_app(workdir: Path, values: dict[str, Any] | None = None, name: str = "web") -> Release:
    """The example app chart with this chart as its `ramparts` dependency."""
    app = copy_charts(workdir) / EXAMPLE_APP.name
    with helm.Chart.load(app) as chart:
        rendered = chart.render(values=values or {}, name=name, namespace=NAMESPACE, is_install=True)
    return Release(name=name, values=values or {}, docs=_parse(rendered))


def render(chart_dir: Path, values: dict[str, Any], name: str, namespace: str = NAMESPACE) -> Release:
    with helm.Chart.load(chart_dir) as chart:
        rendered = chart.render(values=values, name=name, namespace=namespace, is_install=True)
    return Release(name=name, values=values, docs=_parse(rendered))


def load_values(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def chart_defaults() -> dict[str, Any]:
    return load_values(CHART / "values.yaml")
