"""NLU safety net: a message that matches the crisis keywords is `crisis`, whatever DIET says.

A Rasa 3.6 graph component (runs in `.venv-rasa`), placed after DIETClassifier and before the
FallbackClassifier in `config.yml`. The patterns are not kept here: they are the `crisis_any` regex of
`nlu_data/regex.yml` (read from the training data at `rasa train` and stored in the model), so the
keyword list has one home. DIET alone missed a few long messages whose keyword was buried in other
talk ("…欠了一屁股债 我真的不想活了" → return_registration); the gateway has its own safety net
(`bureau.safety.looks_like_crisis`) for messages that reach it, this one covers Rasa itself.

Over-inclusive on purpose, like the rest of the crisis handling: the top intent becomes `crisis` with
confidence 1.0 and DIET's other guesses are dropped (so the FallbackClassifier's ambiguity check
cannot undo it).
"""

from __future__ import annotations

import json
import re
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot import fast_load, fast_train

# This module is imported whenever Rasa reads our model's graph, before any component trains or loads: the
# place to make DIET's load build its weights eagerly, to validate action-server responses with a compiled
# schema (see bot/fast_load.py and benchmarks/nlu/LOAD_TIME.md) and to train without tf.data's idle wait
# at each epoch's end (bot/fast_train.py).
fast_load.install()
fast_load.install_action_validation()
fast_train.install()

_FILE = "patterns.json"


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=True)
class CrisisKeywordClassifier(GraphComponent):
    """Sets the intent to `crisis` when the message matches the crisis keyword regex."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"intent": "crisis", "regex_name": "crisis_any", "case_sensitive": False}

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        patterns: list[str] | None = None,
    ) -> None:
        self._config = config
        self._storage = model_storage
        self._resource = resource
        self._patterns = list(patterns or [])
        flags = 0 if config.get("case_sensitive") else re.IGNORECASE
        self._regex = (
            re.compile("|".join(f"(?:{p})" for p in self._patterns), flags) if self._patterns else None
        )

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> CrisisKeywordClassifier:
        return cls(config, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        patterns = [
            r["pattern"] for r in training_data.regex_features if r.get("name") == self._config["regex_name"]
        ]
        with self._storage.write_to(self._resource) as directory:
            (directory / _FILE).write_text(json.dumps(patterns, ensure_ascii=False), encoding="utf-8")
        return self._resource

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> CrisisKeywordClassifier:
        try:
            with model_storage.read_from(resource) as directory:
                patterns = json.loads((directory / _FILE).read_text(encoding="utf-8"))
        except (ValueError, FileNotFoundError):
            patterns = []
        return cls(config, model_storage, resource, patterns)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        if self._regex is None:
            return messages
        name = self._config["intent"]
        for message in messages:
            text = message.get(TEXT) or ""
            if not self._regex.search(text):
                continue
            top = {INTENT_NAME_KEY: name, PREDICTED_CONFIDENCE_KEY: 1.0}
            message.set(INTENT, top, add_to_output=True)
            message.set(INTENT_RANKING_KEY, [top], add_to_output=True)
        return messages
