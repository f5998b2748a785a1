#!/usr/bin/env python3
"""Turn Rasa NLU test output into benchmarks/nlu/REPORT.md (stdlib only).

Usage (run_cv.sh calls it):
    python3 benchmarks/nlu/report.py --cv-dir DIR [--holdout-dir DIR] [--folds 5]
        [--cv-seconds N] [--train-seconds N] [--note TEXT] [--out benchmarks/nlu/REPORT.md]

DIR is the --out directory of `rasa test nlu` (it holds intent_report.json,
intent_errors.json and, when entities were evaluated, DIETClassifier_report.json).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import shlex
from collections import Counter
from pathlib import Path

SAFETY_INTENT = "crisis"
SUMMARY_KEYS = {"accuracy", "macro avg", "weighted avg", "micro avg"}
REPO = Path(__file__).resolve().parents[2]


def _load(path: Path):
    if not path.is_file():
        return None
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def _fmt(x) -> str:
    return f"{x:.3f}" if isinstance(x, (int, float)) else str(x)


def _duration(seconds) -> str:
    if seconds is None:
        return "n/a"
    seconds = int(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s ({seconds} s)"


def _per_intent(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in SUMMARY_KEYS and isinstance(v, dict)}


def _accuracy(report: dict):
    acc = report.get("accuracy")
    if isinstance(acc, (int, float)):
        return acc
    micro = report.get("micro avg")
    return micro.get("f1-score") if isinstance(micro, dict) else None


def _config_excerpt() -> str:
    cfg = REPO / "config.yml"
    if not cfg.is_file():
        return "(config.yml not found)"
    lines = cfg.read_text(encoding="utf-8").splitlines()
    out, on = [], False
    for line in lines:
        if line.startswith("pipeline:"):
            on = True
        elif on and re.match(r"^[A-Za-z_]", line):
            break
        if on:
            out.append(line)
    return "\n".join(out) if out else "(no pipeline section)"


def _intent_table(report: dict) -> list[str]:
    rows = [
        "| intent | precision | recall | F1 | support | most confused with |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, m in sorted(_per_intent(report).items(), key=lambda kv: (kv[1].get("f1-score", 0), kv[0])):
        confused = m.get("confused_with") or {}
        conf = ", ".join(f"{k} ({v})" for k, v in sorted(confused.items(), key=lambda kv: -kv[1])[:3])
        mark = " **(safety)**" if name == SAFETY_INTENT else ""
        rows.append(
            f"| {name}{mark} | {_fmt(m.get('precision'))} | {_fmt(m.get('recall'))} | "
            f"{_fmt(m.get('f1-score'))} | {m.get('support', '')} | {conf} |"
        )
    return rows


def _errors_section(errors, title: str, limit: int = 40) -> list[str]:
    if not errors:
        return [f"{title}: none."]
    out = [
        f"{title} ({len(errors)}; first {min(limit, len(errors))} by confidence):",
        "",
        "| text | expected | predicted | confidence |",
        "|---|---|---|---:|",
    ]
    for e in sorted(errors, key=lambda e: -(e.get("intent_prediction") or {}).get("confidence", 0))[:limit]:
        pred = e.get("intent_prediction") or {}
        text = str(e.get("text", "")).replace("|", "\\|")
        out.append(f"| {text} | {e.get('intent')} | {pred.get('name')} | {_fmt(pred.get('confidence', 0))} |")
    return out


def _safety_section(report: dict, errors, label: str) -> list[str]:
    m = _per_intent(report).get(SAFETY_INTENT)
    if not m:
        return [f"- {label}: no `{SAFETY_INTENT}` examples in this set."]
    missed = [e for e in (errors or []) if e.get("intent") == SAFETY_INTENT]
    false_alarms = [
        e for e in (errors or []) if (e.get("intent_prediction") or {}).get("name") == SAFETY_INTENT
    ]
    ok = "OK" if m.get("recall", 0) >= 1.0 else "**BELOW 1.0 — fix the data before shipping**"
    out = [
        f"- {label}: `{SAFETY_INTENT}` recall **{_fmt(m.get('recall'))}** ({ok}), precision "
        f"{_fmt(m.get('precision'))}, support {m.get('support')}; missed {len(missed)}, "
        f"false alarms {len(false_alarms)}."
    ]
    for e in missed:
        out.append(f"  - MISSED: {e.get('text')} → {(e.get('intent_prediction') or {}).get('name')}")
    for e in false_alarms[:10]:
        out.append(
            f"  - false alarm (acceptable, over-inclusive by design): {e.get('text')} "
            f"(expected {e.get('intent')})"
        )
    return out


def _entity_section(path: Path) -> list[str]:
    rep = _load(path)
    if not rep:
        return []
    out = [
        "",
        "### Entities (DIETClassifier, same folds)",
        "",
        "| entity | precision | recall | F1 | support |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, m in sorted(rep.items()):
        if name in SUMMARY_KEYS or not isinstance(m, dict) or name == "no_entity":
            continue
        out.append(
            f"| {name} | {_fmt(m.get('precision'))} | {_fmt(m.get('recall'))} | "
            f"{_fmt(m.get('f1-score'))} | {m.get('support')} |"
        )
    for key in ("macro avg", "weighted avg"):
        if isinstance(rep.get(key), dict):
            out.append(
                f"| *{key}* | {_fmt(rep[key].get('precision'))} | {_fmt(rep[key].get('recall'))} | "
                f"{_fmt(rep[key].get('f1-score'))} | {rep[key].get('support')} |"
            )
    return out


def _confusions(errors, limit: int = 12) -> list[str]:
    pairs = Counter((e.get("intent"), (e.get("intent_prediction") or {}).get("name")) for e in errors or [])
    if not pairs:
        return []
    out = ["", "Most frequent confusions (expected → predicted):", ""]
    out += [f"- {a} → {b}: {n}" for (a, b), n in pairs.most_common(limit)]
    return out


def _threshold_section(successes, errors, label: str) -> list[str]:
    """How many predictions a FallbackClassifier threshold would send to nlu_fallback."""
    if successes is None:
        return []
    conf_ok = [(s.get("intent_prediction") or {}).get("confidence", 0) for s in successes]
    conf_bad = [(e.get("intent_prediction") or {}).get("confidence", 0) for e in errors or []]
    if not conf_ok:
        return []
    out = [
        "",
        f"FallbackClassifier threshold on the {label} (correct answers lost to `nlu_fallback` vs "
        f"wrong answers caught; {len(conf_ok)} correct, {len(conf_bad)} wrong; top-intent "
        "confidence only, the ambiguity threshold is not simulated):",
        "",
        "| threshold | correct → fallback | wrong → fallback |",
        "|---:|---:|---:|",
    ]
    for t in (0.3, 0.4, 0.5, 0.6, 0.7):
        lost = sum(c < t for c in conf_ok)
        caught = sum(c < t for c in conf_bad)
        share_bad = (caught / len(conf_bad)) if conf_bad else 0.0
        out.append(f"| {t:.1f} | {lost} ({lost / len(conf_ok):.1%}) | {caught} ({share_bad:.1%}) |")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cv-dir", required=True)
    ap.add_argument("--holdout-dir")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--cv-seconds", type=float)
    ap.add_argument("--train-seconds", type=float)
    ap.add_argument("--train-note", default="", help="free text appended to the timing section")
    ap.add_argument("--note", default="", help="free text shown first in the summary")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "nlu" / "REPORT.md"))
    args = ap.parse_args()

    cv_dir = Path(args.cv_dir)
    report = _load(cv_dir / "intent_report.json")
    if report is None:
        raise SystemExit(f"report.py: {cv_dir / 'intent_report.json'} not found")
    errors = _load(cv_dir / "intent_errors.json") or []
    successes = _load(cv_dir / "intent_successes.json")

    n_examples = sum(m.get("support", 0) for m in _per_intent(report).values())
    macro = report.get("macro avg", {})
    weighted = report.get("weighted avg", {})
    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")

    lines = [
        "# NLU benchmark — Zhanyou (战友)",
        "",
        f"Generated {now} by `benchmarks/nlu/report.py` (which `bash benchmarks/nlu/run_cv.sh` calls).",
        "",
        "## Summary",
        "",
    ]
    if args.note:
        lines += [f"- Note: {args.note}", ""]
    lines += [
        f"- Data: `nlu_data/` — {n_examples} intent examples, {len(_per_intent(report))} intents.",
        f"- {args.folds}-fold cross-validation (`rasa test nlu --nlu nlu_data --config config.yml "
        f"--cross-validation --folds {args.folds}`):",
        f"  - **macro-F1 {_fmt(macro.get('f1-score'))}**, weighted F1 {_fmt(weighted.get('f1-score'))}, "
        f"accuracy {_fmt(_accuracy(report))}",
    ]
    lines += ["  " + s for s in _safety_section(report, errors, "cross-validation")]

    holdout = holdout_errors = holdout_successes = None
    if args.holdout_dir:
        hd = Path(args.holdout_dir)
        holdout = _load(hd / "intent_report.json")
        holdout_errors = _load(hd / "intent_errors.json") or []
        holdout_successes = _load(hd / "intent_successes.json")
    if holdout:
        lines += [
            "- Holdout set `benchmarks/nlu/holdout.yml` (fresh messages, never in training), "
            "model trained on all of `nlu_data/`:",
            f"  - **accuracy {_fmt(_accuracy(holdout))}**, macro-F1 "
            f"{_fmt(holdout.get('macro avg', {}).get('f1-score'))}, "
            f"{sum(m.get('support', 0) for m in _per_intent(holdout).values())} messages",
        ]
        lines += ["  " + s for s in _safety_section(holdout, holdout_errors, "holdout")]

    lines += [
        "",
        "## Timing (2-core machine, shared with other jobs while measured)",
        "",
        f"- `rasa train nlu` (all data): {_duration(args.train_seconds)}",
        f"- {args.folds}-fold cross-validation: {_duration(args.cv_seconds)}",
    ]
    if args.train_note:
        lines.append(f"- {args.train_note}")
    lines += [
        f"- Host: {os.cpu_count()} CPUs (report written by Python {platform.python_version()}; Rasa runs in .venv-rasa)",
        "",
        "## Pipeline measured",
        "",
        "```yaml",
        _config_excerpt(),
        "```",
        "",
        "## Cross-validation per intent (sorted by F1)",
        "",
    ]
    lines += _intent_table(report)
    lines += _confusions(errors)
    lines += _threshold_section(successes, errors, "cross-validation test folds")
    lines += _entity_section(cv_dir / "DIETClassifier_report.json")
    lines += ["", "### Cross-validation errors", ""]
    lines += _errors_section(errors, "Misclassified test-fold examples")

    if holdout:
        lines += ["", "## Holdout set per intent", ""]
        lines += _intent_table(holdout)
        lines += _confusions(holdout_errors)
        lines += _threshold_section(holdout_successes, holdout_errors, "holdout set")
        lines += ["", "### Holdout errors", ""]
        lines += _errors_section(holdout_errors, "Misclassified holdout messages", limit=60)

    tuning = REPO / "benchmarks" / "nlu" / "TUNING.md"
    if tuning.is_file():
        lines += ["", tuning.read_text(encoding="utf-8").rstrip()]

    lines += [
        "",
        "## Reproduce",
        "",
        "```sh",
        "make nlu-report            # = bash benchmarks/nlu/run_cv.sh",
        "# or, step by step:",
        "time .venv-rasa/bin/rasa train nlu --config config.yml --nlu nlu_data --out /tmp/m --fixed-model-name nlu",
        f"{shlex.quote('.venv-rasa/bin/rasa')} test nlu --nlu nlu_data --config config.yml "
        f"--cross-validation --folds {args.folds} --out /tmp/cv",
        ".venv-rasa/bin/rasa test nlu --nlu benchmarks/nlu/holdout.yml --model /tmp/m/nlu.tar.gz "
        "--successes --out /tmp/holdout",
        "# the time budgets: cold full training per component (with and without bot/fast_train.py), model load",
        "bash benchmarks/nlu/train_time.sh",
        "bash benchmarks/nlu/load_time.sh",
        "```",
        "",
    ]

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines), encoding="utf-8")
    print(
        f"macro-F1 {_fmt(macro.get('f1-score'))}  crisis recall "
        f"{_fmt(_per_intent(report).get(SAFETY_INTENT, {}).get('recall'))}"
        + (f"  holdout accuracy {_fmt(_accuracy(holdout))}" if holdout else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
