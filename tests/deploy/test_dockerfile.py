"""The Dockerfile, without a Docker engine: hadolint, and its paths checked against the tree,
pyproject.toml, .dockerignore, the CLI and the Helm chart."""

from __future__ import annotations

import contextlib
import fnmatch
import io
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from proxy.cli import COMMANDS
from proxy.config.policy import ServerConfig
from tests.deploy.dockerfile import DOCKERFILE, exec_form, final_stage, instructions, runtime_env
from tests.deploy.release import CHART, ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


def dockerignore_allows(rel: str) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    allowed = True
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = rel.split("/")
        prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        if pattern.startswith("**/"):
            hit = any(fnmatch.fnmatchcase(p, pattern[3:]) for p in parts) or fnmatch.fnmatchcase(rel, pattern[3:])
        else:
            hit = any(fnmatch.fnmatchcase(p, pattern) for p in prefixes)
        if hit:
            allowed = negate
    return allowed


def test_hadolint_passes():
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_with_a_slim_python_base_matching_requires_python():
    ins = instructions()
    froms = [i for i in ins if i.op == "FROM"]
    assert len(froms) >= 2
    base = next(i.args for i in ins if i.op == "ARG" and i.args.startswith("PYTHON_IMAGE="))
    image = base.split("=", 1)[1]
    assert re.fullmatch(r"python:3\.(\d+)-slim(-\w+)?", image)
    minor = int(re.match(r"python:3\.(\d+)", image).group(1))
    assert minor >= int(re.search(r">=\s*3\.(\d+)", PYPROJECT["project"]["requires-python"]).group(1))
    assert all("${PYTHON_IMAGE}" in f.args for f in froms)


def test_every_copy_source_exists_and_is_in_the_build_context():
    copies = [i for i in instructions() if i.op == "COPY" and "--from=" not in i.args]
    assert copies
    for c in copies:
        *sources, _dest = shlex.split(c.args)
        for src in sources:
            assert (ROOT / src).exists(), f"COPY {src}: missing"
            assert dockerignore_allows(src), f"COPY {src}: excluded by .dockerignore"


def test_copied_tree_is_what_the_wheel_build_needs():
    sources = {s for c in instructions() if c.op == "COPY" and "--from=" not in c.args for s in shlex.split(c.args)[:-1]}
    assert "pyproject.toml" in sources
    assert PYPROJECT["project"]["readme"] in sources  # setuptools reads it for the metadata
    packages = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    assert all(p.rstrip("*") in sources for p in packages)
    # every tracked file of the package survives .dockerignore (package data included:
    # vendored tiktoken files, the injection model, JSON schemas)
    tracked = subprocess.run(["git", "ls-files", "proxy"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert tracked
    assert [f for f in tracked if not dockerignore_allows(f)] == []
    for pattern in PYPROJECT["tool"]["setuptools"]["package-data"]["*"]:
        for f in tracked:
            if fnmatch.fnmatch(f.split("/", 1)[1], f"*{pattern}"):
                assert dockerignore_allows(f)
    # and nothing else leaks into the context
    assert not dockerignore_allows("tests/conftest.py")
    assert not dockerignore_allows(".venv/bin/python")
    assert not dockerignore_allows(".git/config")
    assert not dockerignore_allows("proxy/__pycache__/cli.cpython-311.pyc")


def test_runtime_stage_has_no_build_tools_and_runs_as_the_charts_user():
    final = final_stage()
    text = " ".join(i.args for i in final)
    assert not re.search(r"apt-get|apk |gcc|build-essential|pip install", text)
    copies = [i for i in final if i.op == "COPY"]
    assert copies and all(i.args.startswith("--from=build ") for i in copies)
    (user,) = [i.args for i in final if i.op == "USER"]
    uid, gid = (int(x) for x in user.split(":"))
    assert uid == VALUES["securityContext"]["runAsUser"] and gid == VALUES["securityContext"]["runAsGroup"]
    assert uid >= 1000
    assert f"--uid {uid}" in text


def test_entrypoint_is_ramparts_serve_with_the_charts_paths_and_real_flags():
    final = final_stage()
    (entry,) = [exec_form(i.args) for i in final if i.op == "ENTRYPOINT"]
    (cmd,) = [exec_form(i.args) for i in final if i.op == "CMD"]
    assert entry == ["ramparts", "serve"]
    assert PYPROJECT["project"]["scripts"]["ramparts"] == "proxy.cli:main"
    assert ("serve",) in COMMANDS
    flags = _serve_flags()
    assert {a for a in cmd if a.startswith("--")} <= flags
    # the chart replaces CMD with args that must also be real flags
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    chart_flags = set(re.findall(r"^\s+- (--[a-z-]+)$", helpers, re.M))
    assert {"--policy", "--data-dir", "--listen", "--ops-listen"} <= chart_flags <= flags
    policy = cmd[cmd.index("--policy") + 1]
    assert policy == "/etc/ramparts/policy/policy.yaml" and f"- {policy}" in helpers
    assert runtime_env()["RAMPARTS_POLICY"] == policy
    data = cmd[cmd.index("--data-dir") + 1]
    assert exec_form(next(i.args for i in final if i.op == "VOLUME")) == [data]
    assert f"mountPath: {data}" in helpers


def test_healthcheck_and_ports_match_the_proxy_and_the_chart():
    final = final_stage()
    ops_port = int(ServerConfig().ops_listen.rsplit(":", 1)[1])
    assert ops_port == VALUES["ports"]["ops"]
    (hc,) = [i.args for i in final if i.op == "HEALTHCHECK"]
    assert f"http://127.0.0.1:{ops_port}/healthz" in hc
    assert "CMD [" in hc  # exec form, stdlib python: no curl in the image
    code = exec_form(hc[hc.index("CMD ") + 4:])[2]
    compile(code, "healthcheck", "exec")
    (exposed,) = [i.args for i in final if i.op == "EXPOSE"]
    assert sorted(int(p) for p in exposed.split()) == sorted([VALUES["ports"]["proxy"], ops_port])


def test_read_only_root_filesystem_is_planned_for():
    env = runtime_env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # no .pyc writes at run time ...
    build = [i for i in instructions() if i.stage == 0 and i.op == "RUN"]
    assert any("compileall" in i.args for i in build)  # ... because they were compiled at build time
    assert env["HOME"] == "/tmp" and env["XDG_CACHE_HOME"].startswith("/tmp/")  # caches: the /tmp emptyDir


def _serve_flags() -> set[str]:
    """The flags `ramparts serve --help` lists (its real argparse parser)."""
    from proxy.serve import main as serve_main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        serve_main(["--help"])
    return set(re.findall(r"(--[a-z][a-z-]+)", out.getvalue())) - {"--help"}
