"""bot.boundary_featurizer: binary features for how a message begins and ends.

The component runs in `.venv-rasa`; the code under test runs there (as in tests/test_fast_load.py) on
messages tokenized by Rasa's own JiebaTokenizer, so no trained Rasa model is needed.
"""

from __future__ import annotations

import pytest

from tests.test_fast_load import RASA_PYTHON, pipeline_names, run_in_rasa

PROBE = r"""
import json, tempfile
from pathlib import Path
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.tokenizers.jieba_tokenizer import JiebaTokenizer
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from bot.boundary_featurizer import BoundaryFeaturizer, normalize


def features(message):
    sequence, sentence = message.get_sparse_features("text")
    return {"sequence": sequence is not None, "sentence": sentence.features.toarray().ravel().tolist()}


out = {}
with tempfile.TemporaryDirectory() as tmp:
    storage = LocalModelStorage(Path(tmp))
    context = ExecutionContext(GraphSchema({}), "boundary")
    tokenizer = JiebaTokenizer.create(JiebaTokenizer.get_default_config(), storage, Resource("jieba"), context)
    training = TrainingData([
        Message(data={"text": text, "intent": intent})
        for text, intent in [("医院", "inform"), ("医院在哪？", "service_station"), ("我想找工作", "job_search")]
    ])
    tokenizer.process_training_data(training)
    config = {**BoundaryFeaturizer.get_default_config(), "min_count": 1}
    featurizer = BoundaryFeaturizer.create(config, storage, Resource("boundary"), context)
    featurizer.train(training)
    featurizer.process_training_data(training)
    out["vocabulary"] = featurizer.vocabulary
    out["training"] = {m.get("text"): features(m) for m in training.training_examples}

    loaded = BoundaryFeaturizer.load(config, storage, Resource("boundary"), context)
    out["loaded_vocabulary"] = loaded.vocabulary
    unseen = Message(data={"text": "  医院在哪吗!!"})
    tokenizer.process([unseen])
    loaded.process([unseen])
    out["unseen"] = features(unseen)

    untrained = BoundaryFeaturizer.load(config, storage, Resource("missing"), context)
    message = Message(data={"text": "医院"})
    tokenizer.process([message])
    untrained.process([message])
    out["untrained"] = [f.origin for f in message.features]

    by_default = BoundaryFeaturizer.create(BoundaryFeaturizer.get_default_config(), storage, Resource("twice"), context)
    by_default.train(training)
    out["default_vocabulary"] = by_default.vocabulary

    out["normalize"] = [normalize(t) for t in [" 我想找工作吗？？", "...好的😊", "ＯＫ", "！！"]]
    try:
        BoundaryFeaturizer.create({**config, "prefix_lengths": [0]}, storage, Resource("bad"), context)
        out["bad_config"] = "accepted"
    except InvalidConfigException as error:
        out["bad_config"] = str(error)
    try:
        BoundaryFeaturizer.create({**config, "min_count": 0}, storage, Resource("bad"), context)
        out["bad_min_count"] = "accepted"
    except InvalidConfigException as error:
        out["bad_min_count"] = str(error)

print(json.dumps(out, ensure_ascii=False))
"""

skip_without_rasa = pytest.mark.skipif(not RASA_PYTHON.exists(), reason="the Rasa environment is not set up")


@pytest.fixture(scope="module")
def probe() -> dict:
    return run_in_rasa(PROBE, timeout=300)


def column(probe: dict, feature: str) -> int:
    return probe["vocabulary"].index(feature)


@skip_without_rasa
def test_vocabulary_is_the_first_and_last_one_and_two_characters_seen_in_training(probe):
    # probed with min_count 1
    assert probe["vocabulary"] == sorted(
        ["^医", "^医院", "院$", "医院$", "哪$", "在哪$", "^我", "^我想", "作$", "工作$"]
    )


@skip_without_rasa
def test_a_bare_answer_and_a_request_with_the_same_word_differ_at_the_end(probe):
    bare = probe["training"]["医院"]["sentence"]
    request = probe["training"]["医院在哪？"]["sentence"]
    on = lambda row: {f for f in probe["vocabulary"] if row[column(probe, f)] == 1.0}  # noqa: E731
    assert on(bare) == {"^医", "^医院", "院$", "医院$"}
    # the final ？ is trimmed: the message ends with 哪
    assert on(request) == {"^医", "^医院", "哪$", "在哪$"}
    assert on(probe["training"]["我想找工作"]["sentence"]) == {"^我", "^我想", "作$", "工作$"}


@skip_without_rasa
def test_only_sentence_features_one_column_per_vocabulary_entry(probe):
    width = len(probe["vocabulary"])
    for found in [*probe["training"].values(), probe["unseen"]]:
        assert found["sequence"] is False
        assert len(found["sentence"]) == width


@skip_without_rasa
def test_by_default_a_boundary_seen_in_one_training_text_is_left_out(probe):
    # 医院 and 医院在哪 share their beginning; every other boundary occurs once
    assert probe["default_vocabulary"] == ["^医", "^医院"]


@skip_without_rasa
def test_persisted_vocabulary_featurizes_new_messages_and_ignores_unseen_ends(probe):
    assert probe["loaded_vocabulary"] == probe["vocabulary"]
    row = probe["unseen"]["sentence"]
    # 医院在哪吗: begins as seen in training; its ends 吗 / 哪吗 were never seen and add nothing
    assert [f for f in probe["vocabulary"] if row[column(probe, f)] == 1.0] == ["^医", "^医院"]


@skip_without_rasa
def test_untrained_featurizer_adds_nothing_and_config_is_checked(probe):
    assert probe["untrained"] == []
    assert probe["normalize"] == ["我想找工作吗", "好的", "ｏｋ", ""]
    assert "prefix_lengths must be a list of positive integers" in probe["bad_config"]
    assert "min_count must be a positive integer" in probe["bad_min_count"]


def test_pipeline_puts_boundary_features_before_the_classifiers():
    pipeline = pipeline_names()
    boundary = pipeline.index("bot.boundary_featurizer.BoundaryFeaturizer")
    assert pipeline.index("JiebaTokenizer") < boundary < pipeline.index("DIETClassifier")
