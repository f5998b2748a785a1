"""bot.fast_load: the model loads faster and predicts exactly as with Rasa's stock loading.

Loads the trained model twice in `.venv-rasa` (stock: ZHANYOU_RASA_FAST_LOAD=0, ~45 s; ours: faster) and
compares DIET's full intent ranking and entities and TED's action probabilities on the same trackers
(both DIET and TED are built eagerly since round 6, benchmarks/nlu/LOAD_TIME.md).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RASA_PYTHON = ROOT / ".venv-rasa" / "bin" / "python"

PROBE = """
import asyncio, json, sys, time
from rasa.core.agent import Agent
from rasa.shared.core.events import UserUttered
from rasa.utils.tensorflow.models import RasaModel

TEXTS = ["你好", "我想找工作", "双城镇有保安的工作吗", "优待证怎么办", "需要什么材料", "定期补助金怎么领",
         "服务站在哪里", "我想预约老战友聊聊", "谈心", "工资被拖欠了怎么办", "拥军贷怎么申请", "你是机器人吗",
         "司机", "刚退伍回来要去哪里报到", "住宿有优惠吗", "我不想活了", "13800138000", "明天下午", "asdfgh", "人工"]

start = time.perf_counter()
agent = Agent.load(sys.argv[1])
seconds = time.perf_counter() - start


async def probe():
    nlu, ted = [], []
    tracker = await agent.tracker_store.get_or_create_tracker("probe")
    for text in TEXTS:
        parsed = await agent.parse_message(text)
        nlu.append([text, parsed["intent_ranking"], parsed["entities"]])
        tracker.update(UserUttered(text, parsed["intent"], parsed["entities"], parsed))
        results = agent.processor.graph_runner.run(inputs={"__tracker__": tracker}, targets=["run_TEDPolicy2"])
        ted.append(results["run_TEDPolicy2"].probabilities)
    return nlu, ted


nlu, ted = asyncio.run(probe())
print(json.dumps({"seconds": seconds, "patched": RasaModel.load.__func__.__module__, "nlu": nlu, "ted": ted}))
"""


def pipeline_names() -> list[str]:
    """The component names of config.yml's NLU pipeline, in order."""
    text = (ROOT / "config.yml").read_text(encoding="utf-8")
    pipeline_part = text.split("\npipeline:", 1)[1].split("\npolicies:", 1)[0]
    return re.findall(r"^  - name: (\S+)", pipeline_part, flags=re.M)


def run_in_rasa(code: str, *args: str, timeout: float = 600, **env: str) -> dict:
    """Run `code` in the Rasa environment; the JSON object it prints last."""
    result = subprocess.run(
        [str(RASA_PYTHON), "-W", "ignore", "-c", code, *args],
        cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def probe(model: str, fast: bool) -> dict:
    return run_in_rasa(PROBE, model, ZHANYOU_RASA_FAST_LOAD="1" if fast else "0")


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.skipif(not RASA_PYTHON.exists(), reason="the Rasa environment is not set up")
def test_fast_load_predicts_exactly_as_the_stock_load():
    from wechatsim.stack import current_model

    model = current_model()
    fast, stock = probe(model, fast=True), probe(model, fast=False)
    # installed by our pipeline's own component, with no change to how Rasa is started
    assert fast["patched"] == "bot.fast_load"
    assert stock["patched"] == "rasa.utils.tensorflow.models"
    assert fast["nlu"] == stock["nlu"]
    assert fast["ted"] == stock["ted"]
    # a TED that failed to load (TEDPolicy.load swallows a ValueError) predicts all zeros
    assert all(max(probabilities) > 0 for probabilities in fast["ted"])
    assert fast["seconds"] < stock["seconds"]


VALIDATION = """
import json
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction
from bot import fast_load

good = {"events": [{"event": "slot", "name": "job_category", "value": "保安"}], "responses": [{"text": "好"}]}
bad = [{"events": "not a list"}, {"events": [{"event": "slot", "timestamp": "yesterday"}]}, {"responses": [1]}]


def verdicts(action):
    out = [action._validate_action_result(good)]
    for response in bad:
        try:
            action._validate_action_result(response)
            out.append("accepted")
        except ValidationError as error:
            out.append(error.message)
    return out


action = RemoteAction("action_x", None)
stock = verdicts(action)
assert fast_load.install_action_validation()
print(json.dumps({"stock": stock, "ours": verdicts(action)}, ensure_ascii=False))
"""


@pytest.mark.skipif(not RASA_PYTHON.exists(), reason="the Rasa environment is not set up")
def test_action_response_validation_gives_the_stock_verdicts():
    verdicts = run_in_rasa(VALIDATION, timeout=300)
    assert verdicts["stock"][0] is True
    assert all(
        isinstance(v, str) and "Failed to validate Action server response" in v for v in verdicts["stock"][1:]
    )
    assert verdicts["ours"] == verdicts["stock"]
