"""Run a command the way a hardened deployment does: read-only root, only its volumes writable.

A private mount namespace (util-linux ``unshare -m``) gets: a fresh tmpfs over
``/var/lib`` (so the manifests' paths, e.g. ``/var/lib/edi-gateway``, start empty, as in
a new container), each declared volume bind-mounted writable at its path, the config
directory bound read-only, and then ``/`` and that tmpfs remounted read-only. The kernel
refuses writes anywhere else, to root too (the suite runs as root, which ignores file
modes but not read-only mounts). Nothing changes outside the namespace.
"""

from __future__ import annotations

import asyncio
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

#: hidden behind an empty tmpfs inside the sandbox, so paths under it can be created
SCRATCH = "/var/lib"


def unavailable() -> str | None:
    """Why the sandbox cannot run here, or None when it can."""
    if shutil.which("unshare") is None:
        return "util-linux unshare is missing"
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "mount", "-t", "tmpfs", "t", SCRATCH],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"cannot make a mount namespace here (needs root): {probe.stderr.strip()}"
    return None


def script(
    *,
    workdir: str,
    volumes: Mapping[str, Path],
    readonly: Sequence[Path],
    commands: Sequence[Sequence[str]],
) -> str:
    """The shell that builds the sandbox and runs ``commands`` in order (the last one exec'd).

    ``volumes`` maps a path inside the sandbox to the host directory that backs it;
    ``readonly`` are host paths bound read-only onto themselves (the config).
    """
    q = shlex.quote
    lines = ["set -eu", f"mount -t tmpfs -o mode=0755 edigw-sandbox {SCRATCH}"]
    for inside in sorted(set(volumes) | {workdir}):
        if inside.startswith(SCRATCH + "/"):
            lines.append(f"mkdir -p {q(inside)}")
    for inside, host in sorted(volumes.items()):
        lines.append(f"mount --bind {q(str(host))} {q(inside)}")
    for host_path in readonly:
        lines.append(f"mount --bind {q(str(host_path))} {q(str(host_path))}")
        lines.append(f"mount -o remount,bind,ro {q(str(host_path))}")
    lines += [f"mount -o remount,ro {SCRATCH}", "mount -o remount,bind,ro /", f"cd {q(workdir)}"]
    *first, last = commands
    lines += [shlex.join(argv) for argv in first]
    lines.append("exec " + shlex.join(last))
    return "\n".join(lines) + "\n"


def gateway_argv(args: Sequence[str]) -> list[str]:
    """``edi-gateway ARGS`` with this interpreter (the package is installed in it)."""
    return [sys.executable, "-m", "gateway.cli.main", *args]


async def start(text: str, env: Mapping[str, str]) -> asyncio.subprocess.Process:
    """Start ``text`` (from ``script``) in a new mount namespace; stdout and stderr piped."""
    return await asyncio.create_subprocess_exec(
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        text,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
