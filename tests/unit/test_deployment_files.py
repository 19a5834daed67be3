"""The container and service files: valid syntax, every file they name exists, and their ports agree with
the container configuration. (No Docker engine runs here, so the image itself is not built in CI.)"""

from __future__ import annotations

import configparser
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from ari_app.config import load_settings

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
                "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}


def dockerfile_instructions() -> list[tuple[str, str]]:
    logical, current = [], ""
    for line in (DOCKER / "Dockerfile").read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            logical.append(current.strip())
            current = ""
    assert not current, "a continuation runs off the end of the Dockerfile"
    return [(entry.split(None, 1)[0], entry.split(None, 1)[1] if " " in entry else "") for entry in logical]


def test_dockerfile_syntax_and_sources() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0][0] == "FROM"
    for keyword, args in instructions:
        assert keyword in INSTRUCTIONS, f"unknown instruction {keyword}"
        if keyword in ("COPY", "ADD"):
            *sources, _dest = shlex.split(args)
            for source in sources:
                assert (REPO / source).exists(), f"COPY of a missing path: {source}"
        if keyword in ("ENTRYPOINT", "CMD") and args.startswith("["):
            assert isinstance(json.loads(args), list)


def test_dockerfile_entrypoint_is_a_real_command() -> None:
    entry = dict(dockerfile_instructions())
    entrypoint, cmd = json.loads(entry["ENTRYPOINT"]), json.loads(entry["CMD"])
    assert entrypoint[0].endswith("/ringpool") and "--config" in entrypoint
    config = entrypoint[entrypoint.index("--config") + 1]
    assert config == "/etc/ringpool/ringpool.yaml"
    assert f"docker/ringpool.yaml {config}" in " ".join(a for k, a in dockerfile_instructions() if k == "COPY")
    help_text = subprocess.run([sys.executable, "-m", "ari_app", "--help"], capture_output=True, text=True,
                               cwd=REPO).stdout
    assert all(word in help_text for word in cmd)


def test_container_configuration_is_valid_and_ports_agree() -> None:
    settings = load_settings(DOCKER / "ringpool.yaml")
    ast = settings.asterisk
    expose = dict(dockerfile_instructions())["EXPOSE"].split()
    assert f"{ast.sip_port}/udp" in expose
    assert f"{ast.rtp_start}-{ast.rtp_end}/udp" in expose
    assert f"{settings.admin.port}/tcp" in expose
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    ports = compose["services"]["ringpool"]["ports"]
    assert f"{ast.sip_port}:{ast.sip_port}/udp" in ports
    assert f"{ast.rtp_start}-{ast.rtp_end}:{ast.rtp_start}-{ast.rtp_end}/udp" in ports
    assert f"127.0.0.1:{settings.admin.port}:{settings.admin.port}/tcp" in ports, "admin API on loopback only"


def test_compose_file_refers_to_existing_files() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    service = compose["services"]["ringpool"]
    context = (DOCKER / service["build"]["context"]).resolve()
    assert (context / service["build"]["dockerfile"]).is_file()
    named = set(compose.get("volumes") or {})
    for volume in service["volumes"]:
        source = volume.split(":")[0]
        if source.startswith((".", "/")):
            assert (DOCKER / source).exists(), f"bind mount of a missing file: {source}"
        else:
            assert source in named, f"undeclared named volume {source}"


def test_systemd_unit() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(DOCKER / "ringpool.service")
    assert {"Unit", "Service", "Install"} <= set(unit.sections())
    exec_start = shlex.split(unit["Service"]["ExecStart"])
    assert exec_start[0] == "/opt/ringpool/.venv/bin/ringpool"
    assert exec_start[-1] == "run" and exec_start[1] == "--config"
    assert unit["Service"]["User"] != "root"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert re.fullmatch(r"[a-z]+", unit["Service"]["StateDirectory"])
