#!/usr/bin/env python3
"""Apply the crisis keyword component to saved `rasa test nlu` predictions (stdlib + PyYAML).

`bot/crisis_keywords.py` runs after DIETClassifier and only rewrites the intent of a message that
matches the `crisis_any` regex of `nlu_data/regex.yml`; it changes neither DIET's training nor any
other prediction. So the pipeline's results with the component are exactly DIET's saved predictions
with that rule applied — which this script does, for a run made before the component existed.

Usage:
    python3 benchmarks/nlu/apply_crisis_rule.py IN_DIR OUT_DIR
IN_DIR holds intent_successes.json and intent_errors.json (run with --successes); OUT_DIR gets the
same files plus intent_report.json (and a copy of DIETClassifier_report.json), ready for report.py.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections import Counter, defaultdict
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
INTENT = "crisis"


def crisis_regex() -> re.Pattern[str]:
    data = yaml.safe_load((REPO / "nlu_data" / "regex.yml").read_text(encoding="utf-8"))
    for item in data["nlu"]:
        if item.get("regex") == "crisis_any":
            patterns = [line.strip()[2:] for line in item["examples"].splitlines() if line.strip()]
            return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
    raise SystemExit("no crisis_any regex in nlu_data/regex.yml")


def main() -> int:
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    dst.mkdir(parents=True, exist_ok=True)
    rule = crisis_regex()
    rows = []
    for name in ("intent_successes.json", "intent_errors.json"):
        rows += json.loads((src / name).read_text(encoding="utf-8"))
    changed = 0
    for row in rows:
        if rule.search(row["text"]) and row["intent_prediction"]["name"] != INTENT:
            row["intent_prediction"] = {"name": INTENT, "confidence": 1.0}
            changed += 1
    ok = [r for r in rows if r["intent"] == r["intent_prediction"]["name"]]
    bad = [r for r in rows if r["intent"] != r["intent_prediction"]["name"]]

    labels = sorted({r["intent"] for r in rows})
    confused: dict[str, Counter[str]] = defaultdict(Counter)
    for r in bad:
        confused[r["intent"]][r["intent_prediction"]["name"]] += 1
    report: dict[str, object] = {}
    for label in labels:
        tp = sum(1 for r in ok if r["intent"] == label)
        fp = sum(1 for r in bad if r["intent_prediction"]["name"] == label)
        fn = sum(1 for r in bad if r["intent"] == label)
        p = tp / (tp + fp) if tp + fp else 0.0
        rc = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * p * rc / (p + rc) if p + rc else 0.0
        report[label] = {
            "precision": p,
            "recall": rc,
            "f1-score": f1,
            "support": tp + fn,
            "confused_with": dict(confused[label].most_common(3)),
        }
    per = [v for v in report.values() if isinstance(v, dict)]
    n = len(rows)
    report["accuracy"] = len(ok) / n
    report["macro avg"] = {
        key: sum(m[key] for m in per) / len(per) for key in ("precision", "recall", "f1-score")
    } | {"support": n}
    report["weighted avg"] = {
        key: sum(m[key] * m["support"] for m in per) / n for key in ("precision", "recall", "f1-score")
    } | {"support": n}

    (dst / "intent_successes.json").write_text(json.dumps(ok, ensure_ascii=False, indent=1), encoding="utf-8")
    (dst / "intent_errors.json").write_text(json.dumps(bad, ensure_ascii=False, indent=1), encoding="utf-8")
    (dst / "intent_report.json").write_text(
        json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    if (src / "DIETClassifier_report.json").is_file():
        shutil.copy(src / "DIETClassifier_report.json", dst / "DIETClassifier_report.json")
    print(f"{changed} predictions changed to {INTENT}; macro-F1 {report['macro avg']['f1-score']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
