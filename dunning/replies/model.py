"""A small text model that backs the rules up on phrasings they do not know.

Character n-grams (2–5, within words) and word uni/bigrams, TF-IDF weighted, feed a linear
classifier trained with log loss (scikit-learn's `SGDClassifier`), so it gives one
probability per intent. It is trained in-process, in about a quarter of a second, from the
labelled replies shipped with the package (`dunning/replies/training.jsonl`, or the JSONL file named
by `DUNNING_REPLIES_TRAINING`); nothing is downloaded. Set `DUNNING_REPLIES_TRAINING=off`
to classify with the rules alone.

The model only adds weight to the rules' evidence (see `classify`): it never overrides a
clear rule, but it decides when the rules find nothing and tips close calls.

scikit-learn is imported when the model is first trained, never at import time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from dunning.replies.normalize import normalize
from dunning.replies.quoting import strip_quoted
from dunning.settings import settings

#: Where the training replies are looked for when `DUNNING_REPLIES_TRAINING` is not set.
DEFAULT_TRAINING = Path(__file__).with_name("training.jsonl")


def prepare(text: str) -> str:
    """The text the model sees: the customer's own words, normalized."""
    return normalize(strip_quoted(text or ""))


@dataclass(frozen=True)
class IntentModel:
    """A trained text classifier: `probabilities(text)` per intent."""

    pipeline: Any
    classes: tuple[str, ...]
    trained_on: int

    def probabilities(self, prepared_text: str) -> dict[str, float]:
        """Probability of each intent for text already passed through `prepare`."""
        return self.probabilities_many([prepared_text])[0]

    def probabilities_many(self, prepared_texts: list[str]) -> list[dict[str, float]]:
        """`probabilities` for many texts in one pass (much faster than one by one)."""
        rows = self.pipeline.predict_proba(prepared_texts)
        return [{c: float(p) for c, p in zip(self.classes, row, strict=True)} for row in rows]


def train(examples: Iterable[tuple[str, str]]) -> IntentModel:
    """Fit the model on (raw reply text, intent) pairs."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import SGDClassifier
    from sklearn.pipeline import make_pipeline, make_union

    pairs = list(examples)
    texts = [prepare(text) for text, _ in pairs]
    labels = [intent for _, intent in pairs]
    features = make_union(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True),
    )
    classifier = SGDClassifier(
        loss="log_loss", alpha=1e-4, class_weight="balanced", max_iter=50, tol=None,
        random_state=0,
    )  # fmt: skip
    pipeline = make_pipeline(features, classifier)
    pipeline.fit(texts, labels)
    return IntentModel(pipeline, tuple(str(c) for c in classifier.classes_), len(pairs))


def load_examples(path: Path) -> list[tuple[str, str]]:
    """(text, intent) pairs from a JSONL file of labelled replies; bad lines are skipped."""
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
            pairs.append((str(row["text"]), str(row["intent"])))
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    return pairs


def training_path() -> Path | None:
    """The training file in use, or None when the model is switched off or missing."""
    setting = settings().replies_training
    if setting.lower() in {"off", "none", "0", "false"}:
        return None
    path = Path(setting) if setting else DEFAULT_TRAINING
    return path if path.is_file() else None


@lru_cache(maxsize=1)
def default_model() -> IntentModel | None:
    """The model trained on the repository's replies (once per process), or None."""
    path = training_path()
    if path is None:
        return None
    examples = load_examples(path)
    if len({intent for _, intent in examples}) < 2:
        return None
    return train(examples)
