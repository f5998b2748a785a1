"""Intent ensemble: DIET's intent ranking averaged with a linear model over the same sparse features.

A Rasa 3.6 graph component (runs in `.venv-rasa`), placed in `config.yml` after DIETClassifier and
before the CrisisKeywordClassifier (so the crisis rule still has the last word). At `rasa train` it fits
a multinomial logistic regression (scikit-learn) on the sentence-level sparse features our featurizers
already compute (jieba words, char_wb n-grams, regex / lookup features); at prediction it replaces the
intent and the ranking with

    confidence(intent) = (1 - weight) * DIET(intent) + weight * linear(intent)

DIET's probabilities come from the ranking it put on the message (its top `ranking_length`; an intent
outside it counts 0). DIET keeps the entities. Why (benchmarks/nlu/TUNING.md, round 4): DIET is very
confident when wrong (bare slot answers like 火锅 / 医院 → out_of_scope at 1.000), the linear model makes
different errors, and the average beats either alone.

The fitted model is stored as plain arrays (`linear.npz`: coefficients, intercepts; `classes.json`), no
pickle; the probabilities are the softmax of the linear scores, as scikit-learn's `predict_proba` for a
multinomial model. A message whose features do not have the trained width (cannot happen with an
unchanged pipeline) keeps DIET's answer.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import scipy.sparse
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.featurizers.featurizer import Featurizer
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

logger = logging.getLogger(__name__)

_ARRAYS = "linear.npz"
_CLASSES = "classes.json"
EXPLAIN_KEY = "intent_ensemble"


def sentence_features(message: Message) -> scipy.sparse.csr_matrix | None:
    """The message's sentence-level sparse TEXT features (all featurizers), one row; None if it has none."""
    _, sentence = message.get_sparse_features(TEXT)
    if sentence is None:
        return None
    return scipy.sparse.csr_matrix(sentence.features)


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=True)
class IntentEnsemble(GraphComponent):
    """Averages DIET's intent ranking with a logistic regression over the sparse sentence features."""

    @classmethod
    def required_components(cls) -> list[type]:
        return [Featurizer]

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            # share of the linear model in the average (DIET gets 1 - weight)
            "weight": 0.5,
            # scikit-learn LogisticRegression (multinomial): inverse regularisation strength, solver,
            # iterations, tolerance, class weights. newton-cg converges on our raw count features in ~25
            # iterations (~5 s on 5,000 examples); lbfgs had not converged after 300 (15 s), same answers
            "C": 1.0,
            "solver": "newton-cg",
            "max_iter": 100,
            "tol": 1e-4,
            "class_weight": None,
            # length of the intent ranking put on the message (0: all intents)
            "ranking_length": 10,
            # also put both models' rankings on the parse result under "intent_ensemble" (for tuning)
            "explain": False,
        }

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        classes: list[str] | None = None,
        coef: np.ndarray | None = None,
        intercept: np.ndarray | None = None,
    ) -> None:
        self._config = {**self.get_default_config(), **config}
        self._storage = model_storage
        self._resource = resource
        self._classes = list(classes or [])
        self._coef = coef
        self._intercept = intercept
        weight = float(self._config["weight"])
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"IntentEnsemble: weight must be in [0, 1], got {weight}")
        if self._config["solver"] == "liblinear":
            # one-vs-rest: its probabilities are not the softmax of the scores that `process` computes
            raise ValueError("IntentEnsemble: solver liblinear is one-vs-rest; use a multinomial solver")
        self._weight = weight

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> IntentEnsemble:
        return cls(config, model_storage, resource)

    # training -------------------------------------------------------------------------------------

    def train(self, training_data: TrainingData) -> Resource:
        from sklearn.linear_model import LogisticRegression

        rows, labels = [], []
        for example in training_data.intent_examples:
            if not (example.get(INTENT) and example.get(TEXT)):
                continue
            features = sentence_features(example)
            if features is None:
                continue
            rows.append(features)
            labels.append(example.get(INTENT))
        if len(set(labels)) < 2:
            logger.debug("IntentEnsemble: fewer than two intents with features; nothing to train")
            return self._resource

        clf = LogisticRegression(
            C=float(self._config["C"]),
            solver=self._config["solver"],
            max_iter=int(self._config["max_iter"]),
            tol=float(self._config["tol"]),
            class_weight=self._config["class_weight"],
            random_state=42,
        )
        clf.fit(scipy.sparse.vstack(rows).tocsr(), labels)
        self._classes = [str(c) for c in clf.classes_]
        self._coef = np.asarray(clf.coef_, dtype=np.float64)
        self._intercept = np.asarray(clf.intercept_, dtype=np.float64)
        if len(self._classes) == 2:
            # binary scikit-learn models keep one row (the second class); make it a two-row softmax
            self._coef = np.vstack([np.zeros_like(self._coef), self._coef])
            self._intercept = np.concatenate([[0.0], self._intercept])
        with self._storage.write_to(self._resource) as directory:
            np.savez(directory / _ARRAYS, coef=self._coef, intercept=self._intercept)
            (directory / _CLASSES).write_text(json.dumps(self._classes, ensure_ascii=False), encoding="utf-8")
        return self._resource

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> IntentEnsemble:
        try:
            with model_storage.read_from(resource) as directory:
                classes = json.loads((directory / _CLASSES).read_text(encoding="utf-8"))
                with np.load(directory / _ARRAYS, allow_pickle=False) as arrays:
                    coef, intercept = arrays["coef"], arrays["intercept"]
        except (ValueError, FileNotFoundError):
            logger.debug(
                "IntentEnsemble: no trained linear model in %s; DIET's ranking is kept", resource.name
            )
            return cls(config, model_storage, resource)
        return cls(config, model_storage, resource, classes, coef, intercept)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data

    # prediction -----------------------------------------------------------------------------------

    def linear_probabilities(self, message: Message) -> np.ndarray | None:
        """The linear model's probability per class (order of `classes`), or None if it cannot say."""
        if self._coef is None or self._intercept is None:
            return None
        features = sentence_features(message)
        if features is None or features.shape[1] != self._coef.shape[1]:
            return None
        scores = np.asarray(features @ self._coef.T).ravel() + self._intercept
        return softmax(scores)

    @property
    def classes(self) -> list[str]:
        return list(self._classes)

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            linear = self.linear_probabilities(message)
            if linear is None:
                continue
            diet_ranking = message.get(INTENT_RANKING_KEY) or []
            combined: dict[str, float] = {}
            if diet_ranking:
                for item in diet_ranking:
                    name = item.get(INTENT_NAME_KEY)
                    if name:
                        combined[name] = (1.0 - self._weight) * float(
                            item.get(PREDICTED_CONFIDENCE_KEY) or 0.0
                        )
                share = self._weight
            else:
                share = 1.0
            for name, probability in zip(self._classes, linear, strict=True):
                combined[name] = combined.get(name, 0.0) + share * float(probability)
            ranking = [
                {INTENT_NAME_KEY: name, PREDICTED_CONFIDENCE_KEY: confidence}
                for name, confidence in sorted(combined.items(), key=lambda kv: (-kv[1], kv[0]))
            ]
            length = int(self._config["ranking_length"])
            if length > 0:
                ranking = ranking[:length]
            if self._config["explain"]:
                message.set(
                    EXPLAIN_KEY,
                    {
                        "weight": self._weight,
                        "diet": diet_ranking,
                        "linear": {name: float(p) for name, p in zip(self._classes, linear, strict=True)},
                    },
                    add_to_output=True,
                )
            message.set(INTENT, dict(ranking[0]), add_to_output=True)
            message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
        return messages
