import base64
import re

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from sweetspot.config import StudyConfig
from sweetspot.config.metric_registry import ENTROPY_GRID
from sweetspot.results.report import FIGURES, TOP, write_report
from sweetspot.service.study import open_storage, open_study

CONFIG = StudyConfig(objectives={"missing_class_recall": "maximize", "student_val_acc": "maximize"})  # the values below
DISTS = {
    "batch_size": CategoricalDistribution([16, 32, 64, 128, 256, 512, 1024]),
    "epochs": IntDistribution(1, 100, log=True),
}


def _trial(i: int, state: TrialState = TrialState.COMPLETE):
    entropy = 0.3 + 0.6 * ((i * 37) % 100) / 100
    withheld = min(1.0, entropy * 0.8 + ((i * 11) % 7) / 50)
    attrs = {
        "teacher_entropy": entropy,
        "missing_class_recall": withheld,
        "student_val_acc": 0.8,
        "teacher_val_acc": 0.9,
        "teacher_entropy_by_T": {str(t): min(1.0, entropy * t / 9) for t in ENTROPY_GRID},
        "time_s": {"total": 1.5},
    }
    values = [withheld, entropy] if state == TrialState.COMPLETE else None
    return create_trial(
        state=state,
        values=values,
        params={"batch_size": 16 * 2 ** (i % 7), "epochs": 1 + i % 100},
        distributions=DISTS,
        user_attrs=attrs if state == TrialState.COMPLETE else {},
    )


def _study(url, trials):
    study = open_study(open_storage(url), "r", CONFIG)
    study.add_trials(trials)
    return study


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)]


def test_report_of_one_trial_says_what_it_cannot_draw(storage_url, tmp_path):
    study = _study(storage_url, [_trial(0)])
    paths = write_report(study, CONFIG, tmp_path, "sqlite:///x.db")
    assert [p.name for p in paths] == [f"{f.name}.png" for f in FIGURES] + ["report.html"]
    page = paths[-1].read_text()
    assert len(_images(page)) == len(FIGURES) and all(i[:8] == b"\x89PNG\r\n\x1a\n" for i in _images(page))
    assert "Spearman&#x27;s rho needs 3 or more distinct trials (have 1)" in page
    assert "Best trial by missing_class_recall: <b>trial 0</b>" in page
    assert page.count("<tr>") == 2  # header and the one trial


def test_report_counts_failed_trials_and_correlates_the_rest(storage_url, tmp_path):
    study = _study(
        storage_url, [_trial(i) for i in range(6)] + [_trial(6, TrialState.FAIL), _trial(7, TrialState.FAIL)]
    )
    page = write_report(study, CONFIG, tmp_path, "sqlite:///x.db")[-1].read_text()
    assert "6 complete, 2 fail" in page
    assert re.search(r"Spearman&#x27;s rho = [0-9.-]+, p = [0-9.e-]+ \(n = 6\)", page)


@pytest.mark.parametrize("n", [1000])
def test_report_of_a_thousand_trials_stays_readable(storage_url, tmp_path, n):
    study = _study(storage_url, [_trial(i) for i in range(n)])
    page = write_report(study, CONFIG, tmp_path, "sqlite:///x.db")[-1].read_text()
    assert page.count("<tr>") == TOP + 1  # only the top trials are tabled
    assert f"(n = {n})" in page
    assert len(page) < 2_000_000


def test_report_command_writes_into_out(cli, tiny_config_file, storage_url, tmp_path):
    assert cli("run", tiny_config_file, "--storage", storage_url, "--trials", "3", "--no-progress")[0] == 0
    code, out, err = cli("report", "--storage", storage_url, "--out", tmp_path / "rep")
    assert code == 0, err
    assert "rep/report.html" in out
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "sweetspot report: tiny" in page and len(_images(page)) == len(FIGURES)
    baselines = page.split("<h2>Beside the baselines</h2>")[1].split("</table>")[0]
    assert baselines.count("<tr>") == 4 and "reference teacher (128 x" in baselines and "labels alone" in baselines
    code, _, err = cli("report", "--storage", f"sqlite:///{tmp_path / 'none.db'}")
    assert code == 2 and err.count("\n") == 1


def test_study_and_trials_carry_notes_for_the_dashboard(cli, tiny_config_file, storage_url):
    from optuna_dashboard import get_note

    assert cli("run", tiny_config_file, "--storage", storage_url, "--trials", "2", "--no-progress")[0] == 0
    study = optuna.load_study(study_name="tiny", storage=storage_url)
    assert get_note(study).startswith("# sweetspot study: tiny")
    for frozen in study.trials:
        trial = optuna.trial.Trial(study, frozen._trial_id)  # get_note reads a live trial
        assert get_note(trial).startswith(f"# Teacher: batch size {frozen.params['batch_size']}")
        assert f"on the labels alone the same student reaches **{frozen.user_attrs['label_student_val_acc']:.4f}" \
            in get_note(trial)


def test_report_breaks_a_tie_on_the_first_objective_as_the_export_does(storage_url, tmp_path):
    from sweetspot.results.export import best_first, ordered_front
    from sweetspot.results.report import finished

    tied = [
        create_trial(
            state=TrialState.COMPLETE,
            values=[0.7, entropy],
            params={"batch_size": 64, "epochs": e},
            distributions=DISTS,
            user_attrs={},
        )
        for e, entropy in ((3, 0.90), (2, 0.96))
    ]
    study = _study(storage_url, tied)
    assert best_first(study, finished(study))[0].number == ordered_front(study)[0].number == 1
