"""bot.intent_ensemble: DIET's ranking averaged with a logistic regression over the sparse features.

The component runs in `.venv-rasa`; the code under test runs there (as in tests/test_fast_load.py) on
hand-made messages with sparse sentence features, so no trained Rasa model is needed.
"""

from __future__ import annotations

import pytest

from tests.test_fast_load import RASA_PYTHON, pipeline_names, run_in_rasa

PROBE = r"""
import json, sys, tempfile
from pathlib import Path
import numpy as np
import scipy.sparse
from sklearn.linear_model import LogisticRegression
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from bot.intent_ensemble import IntentEnsemble

rng = np.random.default_rng(0)
INTENTS = ["greet", "job_search", "out_of_scope"]
WIDTH = 12


def message(row, intent=None, text="x"):
    data = {"text": text}
    if intent:
        data["intent"] = intent
    features = Features(scipy.sparse.coo_matrix(np.asarray(row, dtype=float).reshape(1, -1)), "sentence", "text", "t")
    return Message(data=data, features=[features])


# three intents, each with its own "words" (columns) plus noise
rows, labels = [], []
for i, intent in enumerate(INTENTS):
    for _ in range(20):
        row = rng.integers(0, 2, WIDTH) * (rng.random(WIDTH) < 0.2)
        row[4 * i:4 * i + 4] += rng.integers(0, 3, 4)
        rows.append(row)
        labels.append(intent)
# distinct texts: TrainingData drops duplicate examples
training = TrainingData(
    [message(r, l, text=f"example {n}") for n, (r, l) in enumerate(zip(rows, labels))]
    + [Message(data={"text": "no features", "intent": "greet"})]
)

out = {}
with tempfile.TemporaryDirectory() as tmp:
    storage = LocalModelStorage(Path(tmp))
    resource = Resource("ensemble")
    context = ExecutionContext(GraphSchema({}), "test")
    config = {**IntentEnsemble.get_default_config(), "weight": 0.75, "C": 10.0, "max_iter": 1000}
    component = IntentEnsemble.create(config, storage, resource, context)
    component.train(training)
    loaded = IntentEnsemble.load(config, storage, resource, context)

    reference = LogisticRegression(C=10.0, max_iter=1000, solver="newton-cg", tol=1e-4, random_state=42)
    reference.fit(scipy.sparse.csr_matrix(np.asarray(rows, dtype=float)), labels)
    probe = [message(r) for r in rows[::7]]
    ours = np.vstack([loaded.linear_probabilities(m) for m in probe])
    out["classes"] = loaded.classes
    out["max_diff_vs_sklearn"] = float(np.abs(ours - reference.predict_proba(np.asarray(rows[::7], dtype=float))).max())

    # blending with DIET's ranking: 0.25 DIET + 0.75 linear, intents outside DIET's ranking count 0
    m = message(rows[0])
    linear = dict(zip(loaded.classes, loaded.linear_probabilities(m)))
    m.set("intent", {"name": "out_of_scope", "confidence": 0.9})
    m.set("intent_ranking", [{"name": "out_of_scope", "confidence": 0.9}, {"name": "job_search", "confidence": 0.1}])
    loaded.process([m])
    out["blend"] = {"ranking": m.get("intent_ranking"), "intent": m.get("intent"), "linear": linear}

    # no DIET ranking: the linear model alone
    m = message(rows[25])
    loaded.process([m])
    out["alone"] = {"ranking": m.get("intent_ranking"), "linear": dict(zip(loaded.classes, loaded.linear_probabilities(message(rows[25]))))}

    # features of another width (or none): DIET's answer is kept
    kept = []
    for m in (message(list(rows[0]) + [1]), Message(data={"text": "nothing"})):
        m.set("intent", {"name": "greet", "confidence": 0.6})
        m.set("intent_ranking", [{"name": "greet", "confidence": 0.6}])
        loaded.process([m])
        kept.append([m.get("intent"), m.get("intent_ranking")])
    out["kept"] = kept

    # ranking_length and explain
    short = IntentEnsemble.load({**config, "ranking_length": 2, "explain": True}, storage, resource, context)
    m = message(rows[45])
    short.process([m])
    out["short"] = {"ranking": m.get("intent_ranking"), "explain": m.get("intent_ensemble"),
                    "output": sorted(m.as_dict(only_output_properties=True))}

    # an untrained resource loads as a pass-through
    empty = IntentEnsemble.load(config, storage, Resource("missing"), context)
    m = message(rows[0])
    m.set("intent", {"name": "greet", "confidence": 0.6})
    m.set("intent_ranking", [{"name": "greet", "confidence": 0.6}])
    empty.process([m])
    out["empty"] = m.get("intent")

    try:
        IntentEnsemble.create({**config, "weight": 1.5}, storage, resource, context)
        out["bad_weight"] = "accepted"
    except ValueError as error:
        out["bad_weight"] = str(error)

print(json.dumps(out))
"""

skip_without_rasa = pytest.mark.skipif(not RASA_PYTHON.exists(), reason="the Rasa environment is not set up")


@pytest.fixture(scope="module")
def probe() -> dict:
    return run_in_rasa(PROBE, timeout=300)


@skip_without_rasa
def test_linear_model_is_scikit_learns_logistic_regression(probe):
    assert probe["classes"] == ["greet", "job_search", "out_of_scope"]
    # stored as plain arrays and reloaded: the softmax of the scores is predict_proba
    assert probe["max_diff_vs_sklearn"] < 1e-9


@skip_without_rasa
def test_ranking_is_the_weighted_average_of_diet_and_linear(probe):
    blend = probe["blend"]
    linear = blend["linear"]
    expected = {
        "out_of_scope": 0.25 * 0.9 + 0.75 * linear["out_of_scope"],
        "job_search": 0.25 * 0.1 + 0.75 * linear["job_search"],
        "greet": 0.75 * linear["greet"],
    }
    ranking = blend["ranking"]
    assert [r["name"] for r in ranking] == sorted(expected, key=lambda k: -expected[k])
    for item in ranking:
        assert item["confidence"] == pytest.approx(expected[item["name"]])
    assert blend["intent"] == ranking[0]
    assert sum(r["confidence"] for r in ranking) == pytest.approx(1.0)
    # the linear model says greet for a greet-like row, and overrules DIET's 0.9
    assert ranking[0]["name"] == "greet"


@skip_without_rasa
def test_without_diet_ranking_the_linear_model_decides(probe):
    alone = probe["alone"]
    for item in alone["ranking"]:
        assert item["confidence"] == pytest.approx(alone["linear"][item["name"]])
    assert alone["ranking"][0]["name"] == "job_search"


@skip_without_rasa
def test_diet_answer_kept_when_features_do_not_fit_or_nothing_trained(probe):
    for intent, ranking in probe["kept"]:
        assert intent == {"name": "greet", "confidence": 0.6}
        assert ranking == [{"name": "greet", "confidence": 0.6}]
    assert probe["empty"] == {"name": "greet", "confidence": 0.6}


@skip_without_rasa
def test_ranking_length_explain_and_config_check(probe):
    short = probe["short"]
    assert len(short["ranking"]) == 2
    assert short["ranking"][0]["name"] == "out_of_scope"
    assert set(short["explain"]) == {"weight", "diet", "linear"}
    assert "intent_ensemble" in short["output"]
    assert "weight must be in [0, 1]" in probe["bad_weight"]


def test_pipeline_order_keeps_the_crisis_rule_last_among_intent_classifiers():
    pipeline = pipeline_names()
    diet = pipeline.index("DIETClassifier")
    ensemble = pipeline.index("bot.intent_ensemble.IntentEnsemble")
    crisis = pipeline.index("bot.crisis_keywords.CrisisKeywordClassifier")
    fallback = pipeline.index("FallbackClassifier")
    assert diet < ensemble < crisis < fallback
