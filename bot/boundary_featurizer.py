"""Message-boundary features: how a message begins and how it ends.

A Rasa 3.6 sparse featurizer (runs in `.venv-rasa`), placed in `config.yml` after the
CountVectorsFeaturizers. For each message it adds one binary sentence-level vector with the message's
first one and two characters (`^我`, `^我想`) and its last one and two (`吗$`, `么吗$`), read after
trimming spaces and punctuation and lower-casing.

Why (benchmarks/nlu/TUNING.md, round 7): our featurizers count words and character n-grams wherever they
occur, so 医院 as a whole answer (a slot value in a form: `inform`) and 医院在哪 (a request) share most of
their features. Where a word sits is what tells them apart — a bare noun ending the message, a question
particle at the end, 我想 / 帮我 at the start of a request. On the project's data a logistic regression
over the existing features plus these four gained 0.007 macro-F1 in 5-fold CV; more (3-character ends,
length buckets, the final punctuation mark) did not help.

The vocabulary is the set of boundary strings seen in at least `min_count` training texts (2: a string
seen once cannot generalise, and the 3,500 of them would only widen DIET's input), stored as JSON; a
string outside it adds nothing. Only sentence-level features are added: the boundaries belong to the
message, not to a token, and DIET maps sequence- and sentence-level sparse features through separate
dense layers, so they need not have the same width, and all-zero sequence columns would only widen
DIET's sequence layer. Training time: 408 s against 407 s without this component in a back-to-back pair
of cold `rasa train` runs (TUNING.md, round 7).
"""

from __future__ import annotations

import json
import logging
import unicodedata
from collections import Counter
from typing import Any

import numpy as np
import scipy.sparse
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import TOKENS_NAMES
from rasa.nlu.featurizers.sparse_featurizer.sparse_featurizer import SparseFeaturizer
from rasa.nlu.tokenizers.tokenizer import Tokenizer
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

logger = logging.getLogger(__name__)

_VOCABULARY = "vocabulary.json"


def _is_trim(char: str) -> bool:
    # punctuation (，。！？…~) and symbols (emoji, ＋) say nothing about where the words begin or end
    return char.isspace() or unicodedata.category(char)[0] in "PS"


def normalize(text: str) -> str:
    """The text whose ends are featurized: lower-cased, spaces and punctuation trimmed at both ends."""
    text = text.lower()
    start, end = 0, len(text)
    while start < end and _is_trim(text[start]):
        start += 1
    while end > start and _is_trim(text[end - 1]):
        end -= 1
    return text[start:end]


def boundaries(text: str, prefix_lengths: list[int], suffix_lengths: list[int]) -> list[str]:
    """The boundary strings of a message: `^` + its first n characters, its last n characters + `$`."""
    core = normalize(text)
    found = [f"^{core[:n]}" for n in prefix_lengths if len(core) >= n]
    found += [f"{core[-n:]}$" for n in suffix_lengths if len(core) >= n]
    return list(dict.fromkeys(found))


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=True)
class BoundaryFeaturizer(SparseFeaturizer, GraphComponent):
    """Binary features for the first and last characters of the message text."""

    @classmethod
    def required_components(cls) -> list[type]:
        return [Tokenizer]

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            **SparseFeaturizer.get_default_config(),
            # how many leading / trailing characters make a feature (each length its own feature)
            "prefix_lengths": [1, 2],
            "suffix_lengths": [1, 2],
            # a boundary string enters the vocabulary if at least this many training texts have it
            "min_count": 2,
        }

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        vocabulary: list[str] | None = None,
    ) -> None:
        super().__init__(execution_context.node_name, {**self.get_default_config(), **config})
        self._storage = model_storage
        self._resource = resource
        self._vocabulary: dict[str, int] = {}
        self._set_vocabulary(vocabulary or [])

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        for key in ("prefix_lengths", "suffix_lengths"):
            lengths = config.get(key, [])
            if not isinstance(lengths, list) or not all(isinstance(n, int) and n > 0 for n in lengths):
                raise InvalidConfigException(
                    f"BoundaryFeaturizer: {key} must be a list of positive integers, got {lengths!r}"
                )
        min_count = config.get("min_count", 1)
        if not isinstance(min_count, int) or min_count < 1:
            raise InvalidConfigException(
                f"BoundaryFeaturizer: min_count must be a positive integer, got {min_count!r}"
            )

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> BoundaryFeaturizer:
        return cls(config, model_storage, resource, execution_context)

    def _set_vocabulary(self, vocabulary: list[str]) -> None:
        self._vocabulary = {feature: index for index, feature in enumerate(vocabulary)}

    @property
    def vocabulary(self) -> list[str]:
        return list(self._vocabulary)

    def _boundaries(self, text: str) -> list[str]:
        return boundaries(text, self._config["prefix_lengths"], self._config["suffix_lengths"])

    # training -------------------------------------------------------------------------------------

    def train(self, training_data: TrainingData) -> Resource:
        counts: Counter[str] = Counter()
        for example in training_data.training_examples:
            text = example.get(TEXT)
            if text:
                counts.update(self._boundaries(text))
        min_count = int(self._config["min_count"])
        self._set_vocabulary(sorted(b for b, count in counts.items() if count >= min_count))
        with self._storage.write_to(self._resource) as directory:
            (directory / _VOCABULARY).write_text(
                json.dumps(self.vocabulary, ensure_ascii=False), encoding="utf-8"
            )
        return self._resource

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> BoundaryFeaturizer:
        try:
            with model_storage.read_from(resource) as directory:
                vocabulary = json.loads((directory / _VOCABULARY).read_text(encoding="utf-8"))
        except (ValueError, FileNotFoundError):
            logger.debug("BoundaryFeaturizer: no vocabulary in %s; no features added", resource.name)
            vocabulary = []
        return cls(config, model_storage, resource, execution_context, vocabulary)

    # featurizing ----------------------------------------------------------------------------------

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        self.process(training_data.training_examples)
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            self._featurize(message)
        return messages

    def _featurize(self, message: Message) -> None:
        text = message.get(TEXT)
        # as Rasa's own featurizers: an untokenized text gets no features, so every featurized message has
        # the same set of featurizers behind its vector
        if not (self._vocabulary and text and message.get(TOKENS_NAMES[TEXT])):
            return
        columns = sorted({self._vocabulary[b] for b in self._boundaries(text) if b in self._vocabulary})
        sentence = scipy.sparse.coo_matrix(
            (np.ones(len(columns)), (np.zeros(len(columns), dtype=int), columns)),
            shape=(1, len(self._vocabulary)),
        )
        self.add_features_to_message(None, sentence, TEXT, message)
