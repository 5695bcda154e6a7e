"""``sweetspot report``: where the sweet spot is, at a glance. PNG figures and one self-contained
HTML page (the figures embedded), made from the study's stored trials only (nothing is retrained).

Readable for a study of 1 trial (figures that need more say so), with failed trials (counted, not
drawn) and with 1000 trials (small translucent points, a table of the top trials only).
"""

from __future__ import annotations

import base64
import html
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweetspot.config import StudyConfig
from sweetspot.config.metric_registry import ENTROPY_GRID
from sweetspot.results.export import best_first, ordered_front
from sweetspot.service.study import count_states, metric_names

TOP = 10  # rows of the top-trials table


@dataclass(frozen=True)
class Figure:
    name: str  # file stem
    title: str
    caption: str


FIGURES = (
    Figure(
        "sweet-spot-map",
        "The sweet-spot map",
        "Each trial at its teacher's batch size and epochs, coloured by the study's first objective "
        "(left) and by the teacher's soft-label entropy (right); the star is the best trial.",
    ),
    Figure(
        "pareto-front", "Pareto front", "Every finished trial by the study's objectives; the front joined in order."
    ),
    Figure(
        "entropy-vs-missing",
        "Entropy against the missing class",
        "Teacher soft-label entropy at T against how well students recognise a class they never saw (the "
        "missing-class recall; in a study with withheld classes, their accuracy), with Spearman's rank correlation.",
    ),
    Figure(
        "entropy-vs-temperature",
        "Entropy over temperature",
        "Soft-label entropy over T of the best, median and worst trial by the first objective.",
    ),
)


def finished(study: optuna.Study) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values is not None]


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def write_report(study: optuna.Study, config: StudyConfig, out: Path, storage_shown: str) -> list[Path]:
    """Write the figures and ``report.html`` into ``out``; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    trials = finished(study)
    ranked = best_first(study, trials)  # the export's order: the report stars the trial the export calls best
    draws = {
        "sweet-spot-map": _map,
        "pareto-front": _front,
        "entropy-vs-missing": _entropy_missing,
        "entropy-vs-temperature": _temperature,
    }
    paths, notes = [], {}
    for figure in FIGURES:
        fig = plt.figure(figsize=(10, 4.2) if figure.name == "sweet-spot-map" else (6, 4.2))
        notes[figure.name] = draws[figure.name](fig, study, config, trials, ranked)
        fig.tight_layout()
        path = out / f"{figure.name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    page = out / "report.html"
    page.write_text(_html(study, config, trials, ranked, paths, notes, storage_shown))
    return [*paths, page]


def _empty(ax: Any, text: str) -> str:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=11, color="grey")
    ax.set(xticks=[], yticks=[])
    return text


def _point_size(n: int) -> float:
    return 60 if n < 50 else 25 if n < 300 else 8


def _map(
    fig: Any, study: optuna.Study, config: StudyConfig, trials: list[FrozenTrial], ranked: list[FrozenTrial]
) -> str:
    import matplotlib.ticker

    axes = fig.subplots(1, 2)
    first = metric_names(study)[0]  # what the study ranks by, beside what the paper explains it with
    keys = (
        (first, f"{first} (first objective)"),
        ("teacher_entropy", f"teacher entropy at T={config.distill.temperature:g}"),
    )
    if not trials:
        for ax in axes:
            _empty(ax, "no finished trial yet")
        return "no finished trial yet"
    x = [t.params["batch_size"] for t in trials]
    y = [t.params["epochs"] for t in trials]
    for ax, (key, label) in zip(axes, keys):
        colours = [_num(t.user_attrs.get(key)) for t in trials]
        points = ax.scatter(x, y, c=colours, cmap="viridis", s=_point_size(len(trials)), alpha=0.85, edgecolors="none")
        best = ranked[0]
        ax.scatter(
            [best.params["batch_size"]],
            [best.params["epochs"]],
            marker="*",
            s=260,
            facecolors="none",
            edgecolors="red",
            linewidths=1.5,
        )
        ax.set(xscale="log", yscale="log", xlabel="teacher batch size", ylabel="teacher epochs", title=label)
        ax.set_xticks(sorted(set(x)), [str(v) for v in sorted(set(x))], rotation=45, fontsize=7)
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.minorticks_off()
        ax.grid(alpha=0.3)
        fig.colorbar(points, ax=ax)
    return ""


def _front(
    fig: Any, study: optuna.Study, config: StudyConfig, trials: list[FrozenTrial], ranked: list[FrozenTrial]
) -> str:
    ax = fig.subplots()
    names = metric_names(study)
    if not trials:
        return _empty(ax, "no finished trial yet")
    if len(names) == 1:  # one objective: its value per trial and the best so far
        ordered = sorted(trials, key=lambda t: t.number)
        values = [_num(t.values[0]) for t in ordered]
        pick = max if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else min
        best = [pick(values[: i + 1]) for i in range(len(values))]
        ax.scatter([t.number for t in ordered], values, s=_point_size(len(trials)), alpha=0.6, label="trials")
        ax.step([t.number for t in ordered], best, where="post", color="red", label="best so far")
        ax.set(xlabel="trial", ylabel=names[0])
        ax.legend(fontsize=8)
        return ""
    front = ordered_front(study)
    ax.scatter(
        [_num(t.values[0]) for t in trials],
        [_num(t.values[1]) for t in trials],
        s=_point_size(len(trials)),
        alpha=0.5,
        color="grey",
        label="trials",
    )
    ax.plot(
        [_num(t.values[0]) for t in front],
        [_num(t.values[1]) for t in front],
        marker="o",
        color="red",
        label="Pareto front",
    )
    ax.set(xlabel=names[0], ylabel=names[1])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return "" if len(names) == 2 else f"the first two of {len(names)} objectives"


# what "a class the students never saw" is scored by: the missing-class recall, else the withheld classes
UNSEEN = (("missing_class_recall", "missing-class recall (mean over k)"),
          ("student_withheld_acc", "student accuracy on withheld classes"))


def _entropy_missing(
    fig: Any, study: optuna.Study, config: StudyConfig, trials: list[FrozenTrial], ranked: list[FrozenTrial]
) -> str:
    from scipy.stats import spearmanr

    ax = fig.subplots()
    key, label = next(((k, lab) for k, lab in UNSEEN if any(t.user_attrs.get(k) is not None for t in trials)),
                      UNSEEN[0])
    pairs = [(t.user_attrs.get("teacher_entropy"), t.user_attrs.get(key)) for t in trials]
    pairs = [(e, a) for e, a in pairs if e is not None and a is not None]
    if not pairs:
        return _empty(ax, "no trial with missing or withheld classes" if trials else "no finished trial yet")
    ax.scatter(*zip(*pairs), s=_point_size(len(pairs)), alpha=0.7)
    ax.set(xlabel=f"teacher entropy at T={config.distill.temperature:g}", ylabel=label)
    ax.grid(alpha=0.3)
    if len(pairs) < 3 or len({e for e, _ in pairs}) < 2 or len({a for _, a in pairs}) < 2:
        note = f"Spearman's rho needs 3 or more distinct trials (have {len(pairs)})"
    else:
        rho, p = spearmanr([e for e, _ in pairs], [a for _, a in pairs])
        note = f"Spearman's rho = {rho:.3f}, p = {p:.2g} (n = {len(pairs)})"
    ax.set_title(note, fontsize=9)
    return note


def _temperature(
    fig: Any, study: optuna.Study, config: StudyConfig, trials: list[FrozenTrial], ranked: list[FrozenTrial]
) -> str:
    ax = fig.subplots()
    with_curves = [t for t in ranked if t.user_attrs.get("teacher_entropy_by_T")]
    if not with_curves:
        return _empty(ax, "no finished trial yet")
    picks = {"best": with_curves[0], "median": with_curves[len(with_curves) // 2], "worst": with_curves[-1]}
    shown = {}
    for label, t in picks.items():
        shown.setdefault(t.number, []).append(label)
    for number, labels in shown.items():
        t = next(tr for tr in with_curves if tr.number == number)
        curve = t.user_attrs["teacher_entropy_by_T"]
        grid = [g for g in ENTROPY_GRID if str(g) in curve]
        ax.plot(
            grid,
            [curve[str(g)] for g in grid],
            marker="o",
            label=f"{' = '.join(labels)}: trial {number} (batch {t.params['batch_size']}, {t.params['epochs']} epochs)",
        )
    ax.set(xlabel="temperature T", ylabel="mean normalised entropy", ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return ""


def _html(
    study: optuna.Study,
    config: StudyConfig,
    trials: list[FrozenTrial],
    ranked: list[FrozenTrial],
    paths: list[Path],
    notes: dict[str, str],
    storage_shown: str,
) -> str:
    states = count_states(study.get_trials(deepcopy=False))
    counts = ", ".join(f"{n} {s.name.lower()}" for s, n in states.items() if n)
    names = metric_names(study)
    columns = [
        "trial",
        "batch",
        "epochs",
        *names,
        "teacher_val_acc",
        "student_val_acc",
        "label_student_val_acc",
        "kd_gain",
        "missing_class_recall",
        "teacher_entropy",
    ]
    columns = list(dict.fromkeys(columns))
    rows = []
    for t in ranked[:TOP]:
        cells = [t.number, t.params.get("batch_size"), t.params.get("epochs")]
        cells += [_fmt(t.user_attrs.get(c)) for c in columns[3:]]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    table = (
        "<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>" + "".join(rows) + "</table>"
        if rows
        else "<p>No finished trial yet.</p>"
    )
    durations = [t.user_attrs["time_s"]["total"] for t in trials if isinstance(t.user_attrs.get("time_s"), dict)]
    typical = f"; a trial took {statistics.median(durations):.1f} s (median)" if durations else ""
    sections = []
    for figure, path in zip(FIGURES, paths):
        data = base64.b64encode(path.read_bytes()).decode()
        note = f"<p class='note'>{html.escape(notes[figure.name])}</p>" if notes.get(figure.name) else ""
        sections.append(
            f"<h2>{html.escape(figure.title)}</h2><p>{html.escape(figure.caption)}</p>{note}"
            f"<img alt='{figure.name}' src='data:image/png;base64,{data}'>"
        )
    best = ""
    if ranked:
        b = ranked[0]
        best = (
            f"<p class='best'>Best trial by {html.escape(names[0])}: <b>trial {b.number}</b>, batch size "
            f"<b>{b.params['batch_size']}</b>, <b>{b.params['epochs']}</b> epochs "
            f"({html.escape(names[0])} = {_fmt(b.values[0])}).</p>"
        ) + _baselines_html(study)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sweetspot report: {html.escape(study.study_name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }}
img {{ max-width: 100%; }} table {{ border-collapse: collapse; font-size: 0.9em; }}
td, th {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
.note {{ color: #555; font-style: italic; }}
.best {{ font-size: 1.1em; background: #f3f7ff; padding: 0.6em; }}
</style></head><body>
<h1>sweetspot report: {html.escape(study.study_name)}</h1>
<p>Storage {html.escape(storage_shown)}; dataset <code>{html.escape(config.data.name)}</code>,
teacher <code>{html.escape(config.teacher.arch)}</code>, student <code>{html.escape(config.student.arch)}</code>,
T = {config.distill.temperature:g}; trials: {html.escape(counts or "none")}{typical}.</p>
{best}
{"".join(sections)}
<h2>Top trials</h2>
<p>The {min(TOP, len(ranked))} best of {len(ranked)} finished trials by {html.escape(names[0])}.</p>
{table}
</body></html>
"""


def _baselines_html(study: optuna.Study) -> str:
    """The best trial beside the reference teacher (when the study has trained it) and the
    labels-only student, as ``sweetspot run`` prints them."""
    from sweetspot.results.export import BASELINE_COLUMNS, beside_baselines, show_figure
    from sweetspot.service.study import REFERENCE_ATTR, user_attrs

    rows = beside_baselines(study, user_attrs(study).get(REFERENCE_ATTR))
    if len(rows) < 2:
        return ""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ("", *BASELINE_COLUMNS))
    body = "".join(
        f"<tr><td style='text-align:left'>{html.escape(r['name'])}</td>"
        + "".join(f"<td>{html.escape(show_figure(*r['figures'].get(m, (None, None))))}</td>" for m in BASELINE_COLUMNS)
        + "</tr>" for r in rows)
    return ("<h2>Beside the baselines</h2><p>The best trial, the teacher a practitioner would train (the "
            "reference: its batch size, stopped at its best validation accuracy) and the same student trained on "
            f"the labels alone; validation split, ± sd over teacher seeds.</p><table><tr>{head}</tr>{body}</table>")


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)
