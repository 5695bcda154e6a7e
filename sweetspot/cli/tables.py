"""What the commands print about a study: aligned tables, its best trials, the baselines, the summary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def cell(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else ("-" if v is None else str(v))


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 0) -> str:
    """Columns padded to their widest cell; the first ``left`` columns left-aligned (names), the
    rest right-aligned (numbers)."""
    cells = [list(header)] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths), *map(line, cells[1:])])


def flat(record: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """One (name, value) row per number: nested dicts as dotted names (``time_s.teacher``), a list
    of dicts (an epoch curve) as one row per element, its fields side by side."""
    rows: list[tuple[str, Any]] = []
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += flat(value, f"{name}.")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                shown = " ".join(f"{k}={cell(v)}" for k, v in item.items()) if isinstance(item, dict) else item
                rows.append((f"{name}[{i}]", shown))
        else:
            rows.append((name, value))
    return rows


def figure(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def front_table(study: Any, limit: int = 10) -> str:
    """The best trials (the ordered Pareto front), one row each, the chosen one marked *."""
    from sweetspot.results.export import ordered_front
    from sweetspot.service.study import metric_names

    names = metric_names(study)
    shown = ("teacher_val_acc", "student_val_acc", "label_student_val_acc", "kd_gain")
    extra = [k for k in shown if k not in names]  # each column once
    rows = []
    for rank, t in enumerate(ordered_front(study)[:limit]):
        rows.append(
            [
                "*" if rank == 0 else "",
                t.number,
                t.params["batch_size"],
                t.params["epochs"],
                *t.values,
                *(t.user_attrs.get(k) for k in extra),
            ]
        )
    return table(["", "trial", "batch", "epochs", *names, *extra], rows)


def baselines_table(study: Any, reference: dict[str, Any] | None) -> str:
    """The best trial beside the reference teacher and the labels-only student (``export.beside_baselines``)."""
    from sweetspot.results.export import BASELINE_COLUMNS, beside_baselines, show_figure

    rows = beside_baselines(study, reference)
    return table(["", *BASELINE_COLUMNS], [[r["name"], *(show_figure(*r["figures"].get(m, (None, None)))
                                                         for m in BASELINE_COLUMNS)] for r in rows], left=1)


def summary(study: Any, url: str, hint: str | None = None, failures: Sequence[str] = (),
            reference: dict[str, Any] | None = None) -> None:
    """The study's counts, the workers that did not end cleanly, its best trials beside the
    baselines, and what to do next."""
    from optuna.trial import TrialState

    from sweetspot.service.study import count_states, mask_url

    counts = count_states(study.get_trials(deepcopy=False))
    done = counts[TrialState.COMPLETE]
    print(
        f"\nstudy {study.study_name!r} in {mask_url(url)}: {done} finished of {sum(counts.values())} trials"
        + (f", {counts[TrialState.WAITING]} still queued" if counts[TrialState.WAITING] else "")
        + (f", {counts[TrialState.RUNNING]} left running" if counts[TrialState.RUNNING] else "")
        + "".join(f"; {failure}" for failure in failures)
    )
    if done:
        print(f"best trials (Pareto front, best first):\n{front_table(study)}")
        print("\nthe best trial beside the baselines (validation split; ± sd over teacher seeds):\n"
              f"{baselines_table(study, reference)}")
        if hint:
            print(f"\nnext: {hint}")
