"""deploy/ says only what the gateway understands: real commands, flags, paths, config."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
import yaml

from gateway import config
from gateway.api import app
from gateway.cli import main as cli
from tests import sandbox
from tests.conftest import free_port, service_missing
from tests.store.conftest import fresh_schema

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


# --- the manifests start as shipped: read-only root, only declared volumes writable ------


@dataclass
class Launch:
    """How one deployment runs the gateway, read from its manifests."""

    #: the gateway.toml it mounts or installs
    config: str
    #: the environment it gives the process (Secret, env file, compose environment)
    env: dict[str, str]
    #: the working directory
    workdir: str
    #: paths inside the container/unit that are writable volumes
    writable: list[str]
    #: `edi-gateway` arguments: the schema step, then serve
    migrate: list[str]
    serve: list[str]
    #: the writable volumes of the schema step (k8s: its init container's)
    migrate_writable: list[str]


def image_env() -> dict[str, str]:
    """The ENV of the Dockerfile's last stage."""
    env: dict[str, str] = {}
    for line in dockerfile_instructions()["ENV"]:
        for word in shlex.split(line):
            key, _, value = word.partition("=")
            env[key] = value
    return env


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as systemd's EnvironmentFile and compose's --env-file read them."""
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def interpolate(value: str, env: dict[str, str]) -> str:
    """compose's ${VAR}, ${VAR:?message} and ${VAR:-default}; a missing required VAR fails."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2) or "", match.group(3) or ""
        if env.get(name):
            return env[name]
        assert op != ":?", f"compose would refuse to start: {name} unset ({arg})"
        return arg if op == ":-" else ""

    return re.sub(r"\$\{(\w+)(:\?|:-)?([^}]*)\}", one, value)


def k8s_launch() -> Launch:
    [deployment] = [
        d for d in yaml_docs(DEPLOY / "k8s" / "deployment.yaml") if d["kind"] == "Deployment"
    ]
    spec = deployment["spec"]["template"]["spec"]
    [init] = spec["initContainers"]
    [gateway] = spec["containers"]
    [secret] = yaml_docs(DEPLOY / "k8s" / "secret.yaml")
    [cm] = yaml_docs(DEPLOY / "k8s" / "configmap.yaml")
    assert gateway["securityContext"]["readOnlyRootFilesystem"] is True
    writable = [m["mountPath"] for m in gateway["volumeMounts"] if not m.get("readOnly")]
    return Launch(
        config=cm["data"]["gateway.toml"],
        env={**image_env(), **secret["stringData"]},
        workdir=gateway.get("workingDir") or dockerfile_instructions()["WORKDIR"][-1],
        writable=writable,
        migrate=init["args"],
        serve=gateway["args"],
        migrate_writable=[m["mountPath"] for m in init["volumeMounts"] if not m.get("readOnly")],
    )


def compose_launch() -> Launch:
    [doc] = yaml_docs(DEPLOY / "compose.yaml")
    services = doc["services"]
    example = env_file(DEPLOY / "env.example")
    service = services["gateway-a"]
    assert service["read_only"] is True
    assert "deploy/gateway.toml /etc/edi-gateway/gateway.toml" in dockerfile_instructions()["COPY"]
    environment = {k: interpolate(str(v), example) for k, v in service["environment"].items()}
    writable = [v.split(":")[1] for v in service["volumes"]] + list(service.get("tmpfs", []))
    return Launch(
        config=(DEPLOY / "gateway.toml").read_text(),
        env={**image_env(), **environment},
        workdir=dockerfile_instructions()["WORKDIR"][-1],
        writable=writable,
        migrate=services["migrate"]["command"],
        serve=service["command"],
        migrate_writable=writable,  # the migrate service shares the gateway's anchor
    )


def systemd_launch() -> Launch:
    unit: dict[str, list[str]] = {}
    for line in (DEPLOY / "systemd" / "edi-gateway.service").read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            unit.setdefault(key.strip(), []).append(value.strip())
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["EnvironmentFile"] == ["/etc/edi-gateway/env"]  # deploy/env.example, installed
    writable = [f"/var/lib/{d}" for d in unit.get("StateDirectory", [])]
    writable += ["/tmp"] if unit.get("PrivateTmp") == ["yes"] else []
    writable += [p for line in unit.get("ReadWritePaths", []) for p in line.split()]
    return Launch(
        config=(DEPLOY / "gateway.toml").read_text(),
        env=env_file(DEPLOY / "env.example"),
        workdir=unit["WorkingDirectory"][0],
        writable=writable,
        migrate=shlex.split(unit["ExecStartPre"][0])[1:],
        serve=shlex.split(unit["ExecStart"][0])[1:],
        migrate_writable=writable,  # ExecStartPre runs in the same sandbox as ExecStart
    )


def with_config(argv: list[str], path: Path) -> list[str]:
    """The same arguments, with --config pointing at the test's copy of the manifest's file."""
    i = argv.index("--config")
    return [*argv[: i + 1], str(path), *argv[i + 2 :]]


async def wait_for_event(proc: Any, event: str, timeout_s: float) -> list[str]:
    """Log lines (stderr) up to the one whose event is ``event``; fails if the process exits."""
    lines: list[str] = []
    with anyio.move_on_after(timeout_s):
        while True:
            raw = await proc.stderr.readline()
            if not raw:
                await proc.wait()
                raise AssertionError(f"exited {proc.returncode} before {event}:\n" + "".join(lines))
            lines.append(raw.decode(errors="replace"))
            with contextlib.suppress(ValueError):
                if json.loads(raw).get("event") == event:
                    return lines
    raise AssertionError(f"no {event} within {timeout_s} s:\n" + "".join(lines))


async def until_ready(port: int) -> None:
    """Poll /readyz until 200 (the dispatcher runs; shutdown on SIGTERM is graceful)."""
    async with aiohttp.ClientSession() as http:
        with anyio.fail_after(30):
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                        if response.status == 200:
                            return
                await anyio.sleep(0.05)


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.parametrize(
    "launch",
    [k8s_launch, compose_launch, systemd_launch],
    ids=lambda f: f.__name__.removesuffix("_launch"),
)
async def test_serve_starts_as_shipped_on_a_read_only_root_with_only_its_volumes_writable(
    launch: Any, tmp_path: Path
) -> None:
    """The manifests' config and env, a read-only root: migrate, then gateway.listening."""
    reason = sandbox.unavailable()
    if reason:
        service_missing(reason)
    spec: Launch = launch()
    (tmp_path / "etc").mkdir()
    config_file = tmp_path / "etc" / "gateway.toml"
    config_file.write_text(spec.config)
    volumes = {
        p: (Path(p) if p == "/tmp" else tmp_path / "volumes" / p.strip("/")) for p in spec.writable
    }
    for host in volumes.values():
        host.mkdir(parents=True, exist_ok=True)
    port = free_port()
    async with fresh_schema() as dsn:
        env = {
            **spec.env,
            "PATH": os.environ["PATH"],
            # the two values a test must change: its own database and a free loopback port
            "EDIGW_GATEWAY__STORE": dsn,
            "EDIGW_GATEWAY__LISTEN": f"127.0.0.1:{port}",
        }
        schema_step = sandbox.script(
            workdir=spec.workdir,
            volumes={p: volumes[p] for p in spec.migrate_writable},
            readonly=[config_file.parent],
            commands=[sandbox.gateway_argv(with_config(spec.migrate, config_file))],
        )
        migrate = await sandbox.start(schema_step, env)
        out, err = await migrate.communicate()
        assert migrate.returncode == 0, (out + err).decode()
        text = sandbox.script(
            workdir=spec.workdir,
            volumes=volumes,
            readonly=[config_file.parent],
            commands=[sandbox.gateway_argv(with_config(spec.serve, config_file))],
        )
        proc = await sandbox.start(text, env)
        try:
            await wait_for_event(proc, "gateway.listening", 90)
            await until_ready(port)  # then SIGTERM finds its handler in place
            proc.send_signal(signal.SIGTERM)
            await wait_for_event(proc, "gateway.stopped", 30)
            assert await proc.wait() == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        # a recreated container (a new, empty root; the same volumes and environment)
        # still verifies the checkpoints the first one signed: the key was not its own
        again = sandbox.script(
            workdir=spec.workdir,
            volumes=volumes,
            readonly=[config_file.parent],
            commands=[
                sandbox.gateway_argv(["audit", "verify", "--json", "--config", str(config_file)])
            ],
        )
        verify = await sandbox.start(again, env)
        out, err = await verify.communicate()
        assert verify.returncode == 0, (out + err).decode()
        verified = json.loads(out)
        assert verified["ok"] and verified["checkpoint_seq"], verified  # checked against one
    written = sorted(
        str(p.relative_to(tmp_path / "volumes")) for p in (tmp_path / "volumes").rglob("*")
    )
    checkpoints = [p for p in written if "/checkpoint-" in p]
    assert checkpoints, f"no signed checkpoint on a declared volume: {written}"
    assert not [p for p in written if p.endswith("hmac.key")], "the key must come from the env"
