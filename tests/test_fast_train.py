"""bot.fast_train: the datasets Keras builds over Rasa's batch generators train without tf.data autotuning.

The batches must stay exactly the same (what the model learns from), only the autotuning thread whose
wake-up every epoch's end waited for goes away (benchmarks/nlu/TUNING.md, round 8). Runs in `.venv-rasa`.
"""

from __future__ import annotations

import pytest

from tests.test_fast_load import RASA_PYTHON, run_in_rasa

PROBE = """
import json
import numpy as np
from keras.engine import data_adapter
from rasa.utils.tensorflow.data_generator import RasaBatchDataGenerator
from rasa.utils.tensorflow.model_data import FeatureArray, RasaModelData
from tensorflow import keras

rng = np.random.default_rng(7)
sentences = FeatureArray(np.array([rng.random((1, 4)) for _ in range(10)]), number_of_dimensions=3)
data = RasaModelData(data={"text": {"sentence": [sentences]}})


class Plain(keras.utils.Sequence):
    def __len__(self):
        return 2

    def __getitem__(self, index):
        return np.full((2, 3), index, dtype="float32")


def one_epoch(sequence):
    dataset = data_adapter.KerasSequenceAdapter(sequence, shuffle=False).get_dataset()
    batches = [np.concatenate([np.ravel(t) for t in batch]).tolist() for batch in dataset]
    return {"autotune": dataset.options().autotune.enabled, "batches": batches}


def both():
    return {
        "rasa": one_epoch(RasaBatchDataGenerator(data, batch_size=[2, 4], epochs=2, shuffle=False)),
        "plain": one_epoch(Plain()),
    }


stock = both()
import bot.crisis_keywords  # our pipeline's component: Rasa imports it when it reads the graph schema
from bot import fast_train

print(json.dumps({"installed": fast_train._INSTALLED, "stock": stock, "ours": both()}))
"""


@pytest.mark.skipif(not RASA_PYTHON.exists(), reason="the Rasa environment is not set up")
def test_rasa_batches_are_unchanged_and_autotuning_is_off():
    result = run_in_rasa(PROBE, timeout=300)
    assert result["installed"] is True
    stock, ours = result["stock"], result["ours"]
    # tf.data's default (None means on) before; off for Rasa's generator once our component is imported
    assert stock["rasa"]["autotune"] is None
    assert ours["rasa"]["autotune"] is False
    # the model sees the very same batches in the same order
    assert len(ours["rasa"]["batches"]) == 5
    assert ours["rasa"]["batches"] == stock["rasa"]["batches"]
    # a dataset over anything else is left as it was
    assert ours["plain"] == stock["plain"] == {"autotune": None, "batches": [[0.0] * 6, [1.0] * 6]}


@pytest.mark.skipif(not RASA_PYTHON.exists(), reason="the Rasa environment is not set up")
def test_the_switch_keeps_stock_training():
    result = run_in_rasa(PROBE, timeout=300, ZHANYOU_RASA_FAST_TRAIN="0")
    assert result["installed"] is False
    assert result["ours"]["rasa"]["autotune"] is None
