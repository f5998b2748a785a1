"""Rasa 3.6 training without tf.data's idle wait at every epoch's end (DIET and TED).

Runs in `.venv-rasa`. Installed by `bot.crisis_keywords` together with `bot.fast_load` (a component of our
pipeline, so it is imported while Rasa reads the graph schema, before any component trains): every
`rasa train` and `rasa test nlu --cross-validation` of our config gets it.

Why: Keras feeds Rasa's batch generator (a `keras.utils.Sequence`) to `fit` through
`tf.data.Dataset.from_generator(...).prefetch(1)` and builds a new iterator every epoch. With tf.data's
autotuning on (the default) each iterator starts a background "model" thread that sleeps between
optimisation rounds, and destroying the iterator waits for that thread to wake up. Caught in the act with
gdb on a 5-fold CV of our config (benchmarks/nlu/TUNING.md, round 8): the main thread in
`RootDataset::Iterator::~Iterator` waiting for `model::Model::OptimizeLoop`, the process at 0 % CPU for 2–3 s
after most epochs and at times for 22 or 47 s: up to a minute of a 160 s DIET training spent asleep.

The fix: the dataset gets `options.autotune.enabled = False`. There is nothing for autotuning to tune in this
pipeline (a Python generator and a fixed one-batch prefetch); the batches, their order and every step of
training are the same, only the sleeping thread is gone. Only datasets built over Rasa's own generators are
touched. `ZHANYOU_RASA_FAST_TRAIN=0` keeps the stock behaviour (for comparison).
"""

from __future__ import annotations

from typing import Any

from bot.fast_load import may_patch

_INSTALLED = False


def install() -> bool:
    """Turn tf.data autotuning off for the datasets Keras builds over Rasa's batch generators."""
    global _INSTALLED
    if _INSTALLED:
        return True
    if not may_patch("ZHANYOU_RASA_FAST_TRAIN", "training"):
        return False

    import tensorflow as tf
    from keras.engine import data_adapter
    from rasa.utils.tensorflow.data_generator import RasaDataGenerator

    adapter = data_adapter.KerasSequenceAdapter
    stock_get_dataset = adapter.get_dataset

    def get_dataset(self: Any) -> tf.data.Dataset:
        dataset = stock_get_dataset(self)
        if isinstance(getattr(self, "_keras_sequence", None), RasaDataGenerator):
            dataset = dataset.with_options(options_without_autotune())
        return dataset

    adapter.get_dataset = get_dataset
    _INSTALLED = True
    return True


def options_without_autotune() -> Any:
    """`tf.data.Options` with autotuning (and so its background thread) off."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return options
