"""Faster model load for Rasa 3.6: the weight-building step runs eagerly instead of as a traced graph.

Runs in `.venv-rasa`. Installed by `bot.crisis_keywords` (a component of our pipeline, so it is imported
while Rasa reads the model's graph schema, before any component is loaded): every `rasa run`, `rasa test`
and `rasa shell` of our model gets it, with no change to how Rasa is started.

Why: `RasaModel.load` (DIETClassifier, TEDPolicy) builds the Keras model by *training it on one example*
(`model.fit`) and only then reads the trained weights over it. That one step is compiled as a
`tf.function`: TensorFlow traces the whole training graph, gradients and Adam update included, only to
create the variables. Measured with cProfile on our model (benchmarks/nlu/LOAD_TIME.md): `fit` was 56 of
the 65 s of `load_agent`, DIET's load 42 s of it. Run eagerly, DIET's step creates the same variables in
about a second, TED's in a few. The optimizer's trained slots are not restored (prediction does not use
them; TED's eager step orders its variables differently, so they did not even fit, see `install`).

What is unchanged: the step runs the same code on the same example (eagerly), the trained weights are
then read over the variables exactly as before (the optimizer's state excepted), Keras' `run_eagerly` is set back to the component's
configured value, and the prediction function is traced on the example data as before — so predictions
are computed by the same graph from the same weights. A test compares parse results and TED's
probabilities both ways (tests/test_fast_load.py).

Set `ZHANYOU_RASA_FAST_LOAD=0` to load the stock way (for comparison or if a Rasa upgrade changes
`RasaModel.load`; the patch is applied only to the Rasa 3.6 series it was written against).
"""

from __future__ import annotations

import logging
import os
from typing import Any

logger = logging.getLogger(__name__)

_INSTALLED = False


def enabled(switch: str) -> bool:
    """False when the environment variable `switch` says 0/false/no/off (on by default)."""
    return os.environ.get(switch, "1").strip().lower() not in {"0", "false", "no", "off"}


def may_patch(switch: str, what: str) -> bool:
    """True if the switch is on and this is the Rasa 3.6 series our patches were written against."""
    if not enabled(switch):
        return False
    import rasa

    if not rasa.__version__.startswith("3.6."):
        logger.warning("bot: written for Rasa 3.6, found %s; stock %s kept", rasa.__version__, what)
        return False
    return True


def install() -> bool:
    """Replace `RasaModel.load` with the eager-build version; True if it is (now) installed."""
    global _INSTALLED
    if _INSTALLED:
        return True
    if not may_patch("ZHANYOU_RASA_FAST_LOAD", "model loading"):
        return False

    import tensorflow as tf
    from rasa.utils.tensorflow.constants import LEARNING_RATE, RUN_EAGERLY
    from rasa.utils.tensorflow.data_generator import RasaBatchDataGenerator
    from rasa.utils.tensorflow.model_data import RasaModelData
    from rasa.utils.tensorflow.models import RasaModel

    stock = RasaModel.load.__func__

    def load(
        cls: type[RasaModel],
        model_file_name: str,
        model_data_example: RasaModelData,
        predict_data_example: RasaModelData | None = None,
        finetune_mode: bool = False,
        *args: Any,
        **kwargs: Any,
    ) -> RasaModel:
        # Rasa 3.6's RasaModel.load, but the one-example build step runs eagerly (DIET and TED).
        # `rasa train --finetune` keeps the stock path: it needs the optimizer's trained state.
        if finetune_mode or not predict_data_example:
            return stock(
                cls, model_file_name, model_data_example, predict_data_example, finetune_mode, *args, **kwargs
            )
        logger.debug("Loading the model from %s (eager build step)", model_file_name)
        model = cls(*args, **kwargs)
        config = kwargs.get("config", {})
        run_eagerly = config.get(RUN_EAGERLY)
        learning_rate = config.get(LEARNING_RATE, 0.001)
        model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate), run_eagerly=True)
        model.fit(RasaBatchDataGenerator(model_data_example, batch_size=1), verbose=False)
        # The optimizer's slots are not read back: Adam keeps them in a list in the order of the
        # variables it was built with, and TED's eager step creates its variables in another order
        # than the traced one, so the checkpoint's slots did not fit (ValueError, which TEDPolicy.load
        # swallows: the policy then had no model and predicted all zeros). A fresh, unbuilt optimizer
        # takes none of them; prediction never uses the optimizer.
        model.optimizer = tf.keras.optimizers.Adam(learning_rate)
        model.load_weights(model_file_name)
        # RasaModel reads Keras' flag to choose graph or eager prediction: back to what was configured
        model.run_eagerly = run_eagerly
        model.train_function = None  # the eager one is of no further use
        model.run_inference(predict_data_example)  # traces the prediction graph, as before
        return model

    RasaModel.load = classmethod(load)
    _INSTALLED = True
    return True


def install_action_validation() -> bool:
    """Validate action-server responses with one compiled validator instead of `jsonschema.validate`.

    Rasa 3.6's `RemoteAction._validate_action_result` calls `jsonschema.validate(response, schema)`,
    which first re-checks Rasa's own (constant) events schema against the JSON-Schema metaschema: 28.4 ms
    CPU per custom-action call, against 0.55 ms with a validator built once (measured on the real schema,
    benchmarks/nlu/LOAD_TIME.md, per-turn section). Same verdict and same error (`best_match`, as
    `jsonschema.validate` raises), same message Rasa appends.
    """
    if not may_patch("ZHANYOU_RASA_FAST_LOAD", "action-response validation"):
        return False
    from jsonschema import ValidationError, validators
    from jsonschema.exceptions import best_match
    from rasa.core.actions.action import DOCS_BASE_URL, RemoteAction

    schema = RemoteAction.action_response_format_spec()
    validator = validators.validator_for(schema)(schema)

    def _validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
        error = best_match(validator.iter_errors(result))
        if error is None:
            return True
        assert isinstance(error, ValidationError)
        error.message += (
            f". Failed to validate Action server response from API, "
            f"make sure your response from the Action endpoint is valid. "
            f"For more information about the format visit "
            f"{DOCS_BASE_URL}/custom-actions"
        )
        raise error

    RemoteAction._validate_action_result = _validate_action_result
    return True
