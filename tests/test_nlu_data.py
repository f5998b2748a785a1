"""nlu_data/: the label checks that benchmarks/nlu/TUNING.md relies on, run with Rasa's own reader.

Every example text has one intent; the `crisis_any` regex (the CrisisKeywordClassifier's pattern) fires
on every `crisis` example and on no other (so the keyword rule makes no false alarm on the training data
and its crisis recall there is 1.0 by construction); no training example is a holdout message.
"""

from __future__ import annotations

import pytest

from tests.test_fast_load import RASA_PYTHON, run_in_rasa

PROBE = r"""
import glob, json, re
from collections import defaultdict
from rasa.shared.nlu.training_data.loading import load_data

def examples(paths):
    out = []
    for path in paths:
        data = load_data(path)
        out += [(e.get("text"), e.get("intent")) for e in data.intent_examples]
    return out, data

train, _ = examples(sorted(glob.glob("nlu_data/*.yml")))
holdout, _ = examples(["benchmarks/nlu/holdout.yml"])
regex = load_data("nlu_data/regex.yml")
patterns = [r["pattern"] for r in regex.regex_features if r["name"] == "crisis_any"]
crisis_any = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)

labels = defaultdict(set)
for text, intent in train:
    labels[text].add(intent)
holdout_texts = {text for text, _ in holdout}
print(json.dumps({
    "examples": len(train),
    "intents": sorted({intent for _, intent in train}),
    "two_labels": sorted(t for t, i in labels.items() if len(i) > 1),
    "crisis_missed": [t for t, i in train if i == "crisis" and not crisis_any.search(t)],
    "crisis_false_alarms": [t for t, i in train if i != "crisis" and crisis_any.search(t)],
    "in_holdout": sorted(holdout_texts & set(labels)),
    "relabelled": {t: sorted(labels[t]) for t in ("嗯嗯嗯嗯", "ok ok ok ok ok", "嗯嗯嗯", "嗯嗯")},
}, ensure_ascii=False))
"""

skip_without_rasa = pytest.mark.skipif(not RASA_PYTHON.exists(), reason="the Rasa environment is not set up")


@pytest.fixture(scope="module")
def probe() -> dict:
    return run_in_rasa(PROBE, timeout=300)


@skip_without_rasa
def test_every_text_has_one_intent(probe):
    assert probe["examples"] > 5000
    assert "crisis" in probe["intents"] and "out_of_scope" in probe["intents"]
    assert probe["two_labels"] == []


@skip_without_rasa
def test_crisis_regex_matches_exactly_the_crisis_examples(probe):
    assert probe["crisis_missed"] == []
    assert probe["crisis_false_alarms"] == []


@skip_without_rasa
def test_no_training_example_is_a_holdout_message(probe):
    assert probe["in_holdout"] == []


@skip_without_rasa
def test_repeated_agreement_words_are_affirm(probe):
    # round 5 (TUNING.md): 嗯嗯嗯嗯 and "ok ok ok ok ok" were out_of_scope while 嗯嗯 and 嗯嗯嗯 were affirm
    assert probe["relabelled"] == {
        "嗯嗯嗯嗯": ["affirm"],
        "ok ok ok ok ok": ["affirm"],
        "嗯嗯嗯": ["affirm"],
        "嗯嗯": ["affirm"],
    }
