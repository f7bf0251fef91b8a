"""The OpenAPI schema tells the truth, as schemathesis's own fuzzer sees it.

`st run <url>/openapi.json --checks all` runs against a real `knowra-worker serve` (API and
Celery worker, on the suite's Redis), once without API keys and once with KNOWRA_API_KEYS set
and the key sent. The fuzzer also gets one real finished task and one readable file, so it
reaches answers beyond 404 (real statuses, chunk pages, events, conflicts, new tasks).
What JSON Schema cannot state is taught to the generator in openapi_hooks.py; no check is
turned off.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..harness import DATA, Service, free_port, service_env

pytestmark = pytest.mark.integration

HOOKS = Path(__file__).with_name("openapi_hooks.py")
API_KEY = "openapi-test-key"
MAX_EXAMPLES = 15  # per operation and phase: a run stays within seconds
SMALL_FILE = DATA / "norwich-city.txt"


@pytest.fixture(params=[None, API_KEY], ids=["no-keys", "api-key"])
def instance(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str) -> Iterator[Service]:
    keys = {"KNOWRA_API_KEYS": request.param} if request.param else {}
    env = service_env(
        tmp_path, KNOWRA_REDIS_URL=redis_url, KNOWRA_KEY_PREFIX=f"o{uuid.uuid4().hex[:8]}:", **keys
    )
    with Service(env, free_port(), tmp_path) as svc:
        if request.param:
            svc.http.headers["X-API-Key"] = request.param
        svc.wait_ready()
        yield svc


def _config(path: Path, task_id: str) -> Path:
    """A schemathesis.toml that offers the fuzzer a real task id and a readable file, half of
    the time, in place of values it could never guess."""
    path.write_text(
        f"""
[dictionaries.tasks]
values = [{json.dumps(task_id)}]

[dictionaries.files]
values = [{json.dumps(str(SMALL_FILE))}]

[parameters]
"query.task_id" = {{ dictionary = "tasks", probability = 0.5 }}
"body.task_id" = {{ dictionary = "tasks", probability = 0.5 }}
"body.file_path" = {{ dictionary = "files", probability = 0.5 }}
"""
    )
    return path


def _fuzz(svc: Service, config: Path, api_key: str | None) -> subprocess.CompletedProcess[str]:
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(config),
        "run",
        f"{svc.base}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--generation-database",
        "none",
        "--no-color",
    ]
    if api_key:
        command += ["--header", f"X-API-Key: {api_key}"]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)}
    return subprocess.run(command, cwd=svc.tmp, env=env, capture_output=True, text=True)


def test_schemathesis_finds_no_failure(instance: Service) -> None:
    api_key = instance.http.headers.get("X-API-Key")
    schema = instance.http.get("/openapi.json").json()
    schemes = schema.get("components", {}).get("securitySchemes")
    assert bool(schemes) == bool(api_key), "the key is declared exactly when keys are set"

    task_id = f"openapi-{uuid.uuid4().hex[:8]}"
    started = instance.start_task(task_id=task_id, file_path=str(SMALL_FILE))
    assert started.status_code == 202, started.text
    assert instance.wait_final(task_id)["state"] == "succeeded"

    run = _fuzz(instance, _config(instance.tmp / "schemathesis.toml", task_id), api_key)
    report = run.stdout + run.stderr
    (instance.tmp / "schemathesis.log").write_text(report)  # kept beside the service log
    assert run.returncode == 0, report[-20000:]
    operations = len([op for path in schema["paths"].values() for op in path])
    assert re.search(rf"Selected: {operations}/{operations}\s+Tested: {operations}\b", report), (
        report[-5000:]
    )
    assert not re.search(r"\b\d+ (failures?|errors?)\b", report.splitlines()[-1]), report[-5000:]
