"""Rasa reads our endpoint files with the environment filled in (a quoted ${VAR} would stay literal)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RASA_PYTHON = ROOT / ".venv-rasa" / "bin" / "python"

READ = """
import json, sys
from rasa.core.utils import read_endpoints_from_path
endpoints = read_endpoints_from_path(sys.argv[1])
stores = {name: getattr(endpoints, name) for name in ("tracker_store", "lock_store")}
print(json.dumps({
    "action": endpoints.action.url,
    **{name: (store.url if store else None) for name, store in stores.items()},
}))
"""


@pytest.mark.skipif(not RASA_PYTHON.exists(), reason="the Rasa environment is not set up")
@pytest.mark.parametrize("path", ["bot/endpoints.yml", "deploy/endpoints.yml"])
def test_endpoint_files_expand_the_environment(path):
    env = dict(
        os.environ,
        ACTION_SERVER_URL="http://actions.internal:5055/webhook",
        REDIS_HOST="redis.internal",
        REDIS_PORT="6379",
        REDIS_TRACKER_DB="1",
        REDIS_LOCK_DB="2",
    )
    result = subprocess.run(
        [str(RASA_PYTHON), "-W", "ignore", "-c", READ, str(ROOT / path)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    read = json.loads(result.stdout.strip().splitlines()[-1])
    assert read["action"] == "http://actions.internal:5055/webhook"
    if path.startswith("deploy"):
        assert read["tracker_store"] == "redis.internal"
        assert read["lock_store"] == "redis.internal"
