"""deploy/ says only what the gateway understands: real commands, flags, paths, config."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway import cli, config
from gateway.api import app

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
URL_PATH = re.compile(r"https?://[^/\s'\"]+(/[\w./-]*)")
ROUTE_PATHS = {path for method, path, _, _ in app.ROUTES if method == "GET"}


def accepts(argv: list[str]) -> bool:
    """Whether ``edi-gateway ARGV`` parses (argparse exits on anything unknown)."""
    try:
        cli.build_parser().parse_args(argv)
    except SystemExit:
        return False
    return True


def dockerfile_instructions() -> dict[str, list[str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            out.setdefault(word.upper(), []).append(rest.strip())
    return out


def yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def k8s_containers() -> list[dict[str, Any]]:
    out = []
    for doc in yaml_docs(DEPLOY / "k8s" / "deployment.yaml"):
        if doc["kind"] == "Deployment":
            spec = doc["spec"]["template"]["spec"]
            out += spec.get("initContainers", []) + spec["containers"]
    return out


def test_parser_check_refuses_unknown_commands_and_flags() -> None:
    """The checker itself tells a real command line from a made-up one."""
    assert accepts(["serve", "--config", "x.toml"])
    assert not accepts(["serve", "--port", "8080"])
    assert not accepts(["serverless"])


def test_dockerfile_is_multi_stage_non_root_with_healthz_healthcheck() -> None:
    """Two stages, a numeric non-root USER, a HEALTHCHECK on /healthz, a valid CMD."""
    ins = dockerfile_instructions()
    assert len(ins["FROM"]) >= 2
    assert ins["USER"][-1].split(":")[0] not in ("root", "0")
    [health] = ins["HEALTHCHECK"]
    assert URL_PATH.findall(health) == ["/healthz"]
    entrypoint = json.loads(ins["ENTRYPOINT"][-1])
    command = json.loads(ins["CMD"][-1])
    assert entrypoint == ["edi-gateway"]
    assert accepts(command)


def test_compose_runs_postgres_and_two_gateway_replicas_with_valid_commands() -> None:
    """compose.yaml: PostgreSQL, a migrate step, two gateways; commands and probes exist."""
    [doc] = yaml_docs(DEPLOY / "compose.yaml")
    services = doc["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    gateways = [s for s in services.values() if s.get("image", "").startswith("edi-gateway")]
    commands = [s["command"][0] for s in gateways]
    assert commands.count("serve") == 2
    assert "migrate" in commands
    for service in gateways:
        assert accepts(service["command"]), service["command"]
        assert service["environment"]["EDIGW_GATEWAY__STORE"].startswith("postgresql://")
        test = service.get("healthcheck", {}).get("test")
        if test:
            for path in URL_PATH.findall(" ".join(test)):
                assert path in ROUTE_PATHS


def test_systemd_unit_is_hardened_and_runs_valid_commands() -> None:
    """The unit's Exec lines are real edi-gateway commands; hardening options are set."""
    unit: dict[str, list[str]] = {}
    for line in (DEPLOY / "systemd" / "edi-gateway.service").read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            unit.setdefault(key.strip(), []).append(value.strip())
    execs = unit["ExecStartPre"] + unit["ExecStart"]
    for line in execs:
        argv = shlex.split(line)
        assert argv[0].endswith("/edi-gateway")
        assert accepts(argv[1:]), argv
    assert shlex.split(unit["ExecStart"][0])[1] == "serve"
    for option in (
        "NoNewPrivileges",
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "RestrictAddressFamilies",
        "SystemCallFilter",
        "CapabilityBoundingSet",
    ):
        assert option in unit, option
    assert unit["User"] != ["root"]


def test_k8s_deployment_probes_readyz_and_healthz_and_runs_valid_commands() -> None:
    """Probes hit real API paths; container commands parse; DSN and tokens come from a Secret."""
    containers = k8s_containers()
    for c in containers:
        assert c["command"] == ["edi-gateway"]
        assert accepts(c["args"]), c["args"]
        assert {"secretRef": {"name": "edi-gateway-secrets"}} in c["envFrom"]
    [gateway] = [c for c in containers if c["args"][0] == "serve"]
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe"):
        assert gateway[probe]["httpGet"]["path"] in ROUTE_PATHS
    [secret] = yaml_docs(DEPLOY / "k8s" / "secret.yaml")
    assert secret["kind"] == "Secret"
    assert set(secret["stringData"]) >= {"EDIGW_GATEWAY__STORE", "EDIGW_TOKEN_SERVICES"}


@pytest.mark.parametrize("source", ["gateway.toml", "k8s/configmap.yaml"])
def test_shipped_config_is_valid_with_its_secrets_from_the_environment(source: str) -> None:
    """The TOML in deploy/ (file and ConfigMap) loads with the env the manifests provide."""
    if source.endswith(".yaml"):
        [cm] = yaml_docs(DEPLOY / source)
        assert cm["kind"] == "ConfigMap"
        data = tomllib.loads(cm["data"]["gateway.toml"])
    else:
        data = tomllib.loads((DEPLOY / source).read_text())
    env = {
        "EDIGW_GATEWAY__STORE": "postgresql://edigw@db:5432/edigw",
        "EDIGW_TOKEN_SERVICES": "s3cret",
        "EDIGW_TOKEN_OPERATOR": "s3cret2",
    }
    cfg = config.parse_config(data, env)
    assert cfg.gateway.store.startswith("postgresql://")
    assert cfg.auth.mode == "token"
    assert {t.secret_env for t in cfg.auth.tokens.values()} <= set(env)
