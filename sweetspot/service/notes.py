"""The markdown notes optuna-dashboard shows: one per study (how to read it), one per trial (what
its teacher's soft labels carry and what its student learnt). Pure functions of the config and a
trial's metrics, so that they can be tested without a dashboard."""

from __future__ import annotations

from typing import Any

from sweetspot.config import StudyConfig, batch_size_choices
from sweetspot.config.metric_registry import ENTROPY_GRID, TRIAL_METRICS


def study_note(config: StudyConfig) -> str:
    d, s = config.distill, config.search
    objectives = "\n".join(
        f"{i + 1}. `{m}` ({direction}): {TRIAL_METRICS[m]}"
        for i, (m, direction) in enumerate(config.objectives.items())
    )
    withheld = ", ".join(map(str, d.withheld_classes)) or "none"
    chosen = d.missing_classes
    missing = chosen if isinstance(chosen, str) else ", ".join(map(str, chosen)) or "none"
    lines = [
        f"# sweetspot study: {config.name}",
        "",
        (
            "Each trial trains a teacher with the batch size and number of epochs below, measures how much "
            "similarity information its soft labels `softmax(z/T)` carry (their mean normalised entropy: 1 = "
            "uniform, 0 = one-hot), and distils students from them: one on the whole transfer set and, for each "
            "missing class k, one that never sees k (the paper's Table 5), scored on k. Every trial's students "
            "start from the same weights and see the same batches: only the teacher differs."
        ),
        "",
        "## Objectives",
        "",
        objectives,
        "",
        "The first objective decides the best trial (`sweetspot export`).",
        "",
        "## Search space",
        "",
        f"* teacher batch size: {', '.join(map(str, batch_size_choices(s.batch_size)))}",
        f"* teacher epochs: {s.epochs[0]} to {s.epochs[1]} (log scale)",
        *([f"* teacher learning rate: {s.teacher_lr[0]:g} to {s.teacher_lr[1]:g} (log scale)"] if s.teacher_lr else []),
        *([f"* temperature: {s.temperature[0]:g} to {s.temperature[1]:g}"] if s.temperature else []),
        "",
        "## Fixed",
        "",
        (
            f"* data: `{config.data.name}`; teacher `{config.teacher.arch}` {dict(config.teacher.options) or ''}; "
            f"student `{config.student.arch}`, {config.student.epochs} epochs at batch {config.student.batch_size}"
        ),
        f"* distillation: T = {d.temperature:g}, alpha = {d.alpha:g} (weight of the soft term), loss `{d.loss}`; "
        f"missing classes: {missing}; withheld classes: {withheld}"
        + (f"; {d.examples_per_class} transfer examples per class" if d.examples_per_class else ""),
        "",
        "## How to read the trials",
        "",
        (
            "* Larger batches and fewer epochs keep the teacher's entropy high; smaller batches and more epochs "
            "drive it down toward label smoothing, and the students stop learning the classes they never saw."
        ),
        (
            "* Too little training gives a high entropy but a useless teacher (low `teacher_val_acc`). The sweet "
            "spot lies between: high student accuracy with a teacher that still carries similarity information."
        ),
        (
            "* Each trial's note has its entropy over temperatures and all its metrics; its artifacts hold the "
            "teacher's weights (a state dict) and a picture of its mean soft labels per class."
        ),
        "* `sweetspot report` draws the map of batch size x epochs; `sweetspot export` writes the best teachers.",
    ]
    return "\n".join(lines) + "\n"


def trial_note(params: dict[str, Any], metrics: dict[str, Any], temperature: float) -> str:
    seeded = metrics.get("teacher_seeds") or {}
    sd = {k: v for k, v in (seeded.get("sd") or {}).items() if v is not None}  # several teacher seeds

    def fmt(value: Any) -> str:
        return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)

    def show(name: str) -> str:
        """A metric of the trial, with its sd over the teacher seeds where there are several."""
        text = fmt(metrics.get(name))
        return f"{text} ± {sd[name]:.4f}" if name in sd else text

    by_t = metrics.get("teacher_entropy_by_T") or {}
    grid = [str(t) for t in ENTROPY_GRID if str(t) in by_t]
    lines = [
        f"# Teacher: batch size {params.get('batch_size')}, "
        f"{params.get('epochs')} epoch{'s' * (params.get('epochs') != 1)}",
        "",
        (
            f"Soft-label entropy at T = {temperature:g}: **{show('teacher_entropy')}**; student accuracy "
            f"**{show('student_val_acc')}** (on the labels alone the same student reaches "
            f"**{show('label_student_val_acc')}**: distilling gains **{show('kd_gain')}**); a student that never "
            f"saw class k recognises it "
            f"**{show('missing_class_recall')}** of the time (mean over k), "
            f"**{show('missing_class_recall_corrected')}** after the bias correction."
            + (f" Every figure is the mean over {len(seeded['seeds'])} teacher seeds (± their sd)."
               if sd else "")
        ),
        "",
        "## Entropy of the soft labels over T",
        "",
        "| T | " + " | ".join(grid) + " |",
        "|---|" + "---|" * len(grid),
        "| entropy | " + " | ".join(f"{by_t[t]:.3f}" for t in grid) + " |",
        "",
        "## Metrics",
        "",
        "| metric | value | meaning |",
        "|---|---|---|",
        *(f"| `{m}` | {show(m)} | {meaning} |" for m, meaning in TRIAL_METRICS.items()),
    ]
    by_class = metrics.get("missing_class_recall_by_class") or {}
    corrected = metrics.get("missing_class_recall_corrected_by_class") or {}
    if by_class:
        lines += ["", "## Each missing class (the paper's Table 5 row of this teacher)", "",
                  "| class k | recall of the k-less student | after the bias correction |", "|---|---|---|",
                  *(f"| {k} | {fmt(v)} | {fmt(corrected.get(k))} |" for k, v in by_class.items())]
    if "reused_from" in metrics:
        lines += ["", f"Same parameters as trial {metrics['reused_from']}: its result is reused, not trained again."]
    return "\n".join(lines) + "\n"
