"""The package as a user installs it: the wheel, in a fresh venv, without extras.

The development venv holds the test and dev extras, which bring packages the service
needs but might forget to declare (kombu's Redis transport needs `packaging`, which only
pytest happened to bring). So this builds the wheel, installs it alone into an empty venv,
imports every module of the installed package there and runs one real PDF through the
installed `knowra-worker serve` on the suite's Redis.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..harness import DATA, Service, free_port, service_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# Packages that only the test and dev extras bring: the installed service must not need them.
EXTRAS_ONLY = ["pytest", "hypothesis", "httpx2", "schemathesis", "ruff", "mypy"]

IMPORT_ALL = """
import importlib, importlib.util, json, pkgutil, sys
import knowra_worker
names = ["knowra_worker"]
for info in pkgutil.walk_packages(knowra_worker.__path__, "knowra_worker."):
    if not info.name.endswith(".__main__"):  # importing it runs the command line
        importlib.import_module(info.name)
        names.append(info.name)
# The broker transport Celery loads for redis:// URLs, only when it first sends a message.
importlib.import_module("kombu.transport.redis")
extras = [n for n in sys.argv[1:] if importlib.util.find_spec(n) is not None]
print(json.dumps({"file": knowra_worker.__file__, "modules": names, "extras": extras}))
"""


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, env=_clean_env()
    )
    assert done.returncode == 0, f"{args[:3]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done.stdout


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that would point Python at the source tree."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(extra)
    return env


def _build_wheel(tmp: Path) -> Path:
    """`pip wheel --no-deps` of a copy of the project, so no build/ directory of the working
    tree (or of an earlier build) slips stale modules into the wheel."""
    project = tmp / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    shutil.copytree(ROOT / "src", project / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, project / name)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp / "dist", project)
    (wheel,) = (tmp / "dist").glob("knowra_worker-*.whl")
    return wheel


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel and its declared dependencies, nothing else."""
    tmp = tmp_path_factory.mktemp("install")
    wheel = _build_wheel(tmp)
    venv = tmp / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-compile", wheel)
    return venv


def test_every_module_imports_without_extras(venv: Path) -> None:
    out = _run(venv / "bin" / "python", "-c", IMPORT_ALL, *EXTRAS_ONLY, cwd=venv)
    found = json.loads(out.splitlines()[-1])
    assert Path(found["file"]).is_relative_to(venv), "imported the source tree, not the wheel"
    assert found["extras"] == [], "the venv holds packages of the test or dev extras"
    expected = {
        ".".join(p.relative_to(ROOT / "src").with_suffix("").parts).removesuffix(".__init__")
        for p in (ROOT / "src" / "knowra_worker").rglob("*.py")
        if p.name != "__main__.py"
    }
    assert set(found["modules"]) == expected


@pytest.fixture
def installed_service(venv: Path, tmp_path: Path, redis_url: str) -> Iterator[Service]:
    """The venv's own `knowra-worker serve` command on the suite's Redis."""
    env = service_env(
        tmp_path, KNOWRA_REDIS_URL=redis_url, KNOWRA_KEY_PREFIX=f"i{uuid.uuid4().hex[:8]}:"
    )
    env = {k: v for k, v in env.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    port = free_port()
    command = [str(venv / "bin" / "knowra-worker"), "serve", "--host", "127.0.0.1"]
    with Service(env, port, tmp_path, args=[*command, "--port", str(port)]) as svc:
        svc.wait_ready(timeout=120)
        yield svc


def test_installed_service_runs_a_pdf_task(installed_service: Service) -> None:
    svc = installed_service
    task_id = f"install-{uuid.uuid4().hex[:8]}"
    started = svc.start_task(task_id=task_id, file_path=str(DATA / "multi_page.pdf"))
    assert started.status_code == 202, started.text
    status = svc.wait_final(task_id)
    assert status["state"] == "succeeded", f"{status}\n{svc.log()[-5000:]}"
    result = svc.http.get("/worker/task_result", params={"task_id": task_id}).json()
    assert result["total"] == status["progress"]["chunks"] > 0
    assert all(chunk["text"].strip() for chunk in result["chunks"])
    assert result["chunks"][0]["metadata"]["mime_type"] == "application/pdf"
    assert svc.stop() in (0, -signal.SIGTERM), f"unclean stop:\n{svc.log()[-5000:]}"
