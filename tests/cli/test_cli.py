import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from sweetspot.config.metric_registry import TRIAL_METRICS
from tests.conftest import run_console_script


def test_run_console_script_completes_a_study_readable_by_optuna(tiny_config_file, tmp_path):
    # the installed command, in a fresh working directory, with the default storage location
    result = run_console_script("run", tiny_config_file, "--trials", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "best trials (Pareto front, best first)" in result.stdout
    assert "3/3" in result.stderr  # the progress bar reached the total
    assert (tmp_path / "sweetspot.db").is_file()
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'sweetspot.db'}")
    assert len(study.trials) == 3
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert study.metric_names == ["student_val_acc", "missing_class_recall"]
    assert all(set(TRIAL_METRICS) <= set(t.user_attrs) for t in study.trials)
    # Optuna's own CLI reads the study unchanged
    listed = subprocess.run(
        [str(Path(sys.executable).with_name("optuna")), "trials", "--storage", "sqlite:///sweetspot.db",
         "--study-name", "tiny", "-f", "json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 3


def test_run_again_adds_trials_to_the_same_study(cli, tiny_config_file, storage_url):
    assert cli("run", tiny_config_file, "--storage", storage_url, "--trials", "2", "--no-progress")[0] == 0
    code, out, _ = cli("run", tiny_config_file, "--storage", storage_url, "--trials", "1", "--no-progress")
    assert code == 0 and "3 finished of 3 trials" in out
    numbers = [t.number for t in optuna.load_study(study_name="tiny", storage=storage_url).trials]
    assert numbers == [0, 1, 2]


def test_run_shows_the_best_trial_beside_the_reference_teacher_and_the_labels_alone(cli, write_config, storage_url):
    """The baselines: trained once per study, stored with it, printed by every run and by export."""
    from sweetspot.service.study import REFERENCE_ATTR

    config = write_config({"reference.batch_size": 64})
    code, out, _ = cli("run", config, "--storage", storage_url, "--trials", "2", "--no-progress")
    assert code == 0 and "training the reference teacher: batch 64" in out
    study = optuna.load_study(study_name="tiny", storage=storage_url)
    reference = study.user_attrs[REFERENCE_ATTR]
    best_line, reference_line, labels_line = out.split("beside the baselines")[1].strip().splitlines()[3:6]
    assert best_line.startswith("best trial") and labels_line.startswith("labels alone (no teacher)")
    assert reference_line.startswith(f"reference teacher (64 x {reference['epochs'][0]}, best val acc)")
    assert f"{reference['mean']['student_val_acc']:.3f}" in reference_line.split(")")[-1]
    labels = {t.user_attrs["label_student_val_acc"] for t in study.trials}
    labels.add(reference["mean"]["label_student_val_acc"])
    assert len(labels) == 1 and f"{labels.pop():.3f}" in labels_line  # one baseline: common random numbers
    code, again, _ = cli("run", config, "--storage", storage_url, "--trials", "1", "--no-progress")
    assert code == 0 and "training the reference teacher" not in again  # once per study
    assert optuna.load_study(study_name="tiny", storage=storage_url).user_attrs[REFERENCE_ATTR] == reference
    code, out, _ = cli("export", "--storage", storage_url, "--out", str(Path(storage_url[10:]).with_name("b.json")))
    assert code == 0 and "reference teacher (64 x" in out
    exported = json.loads(Path(storage_url[10:]).with_name("b.json").read_text())
    assert exported["reference"] == reference


def test_a_study_ranked_by_the_teacher_alone_trains_no_student_and_says_so(cli, write_config, storage_url):
    config = write_config({"objectives": {"teacher_val_acc": "maximize"}, "reference.batch_size": 64})
    code, out, _ = cli("run", config, "--storage", storage_url, "--trials", "2", "--no-progress")
    assert code == 0 and "training the reference teacher: batch 64" in out and "without students" in out
    trials = optuna.load_study(study_name="tiny", storage=storage_url).trials
    assert all(t.user_attrs["student_val_acc"] is None and "student" not in t.user_attrs["time_s"] for t in trials)
    best_line = out.split("beside the baselines")[1].strip().splitlines()[3]
    assert best_line.split(")")[-1].split()[:3] == ["-", "-", "-"]  # no student, no kd_gain, no missing class
    code, out, _ = cli("export", "--storage", storage_url, "--out", str(Path(storage_url[10:]).with_name("b.json")),
                       "--confirm", "2")
    assert code == 0, out


def test_run_reads_the_storage_from_the_environment(cli, tiny_config_file, storage_url, monkeypatch):
    monkeypatch.setenv("SWEETSPOT_STORAGE", storage_url)
    assert cli("run", tiny_config_file, "--trials", "1", "--no-progress")[0] == 0
    assert len(optuna.load_study(study_name="tiny", storage=storage_url).trials) == 1


def test_run_refuses_a_mismatching_config_and_writes_nothing(cli, tiny_config_file, write_config, storage_url):
    assert cli("run", tiny_config_file, "--storage", storage_url, "--trials", "1", "--no-progress")[0] == 0
    other = write_config({"distill.alpha": 0.5})
    code, _, err = cli("run", other, "--storage", storage_url, "--trials", "1", "--no-progress")
    assert code == 2
    assert "created with a different config (distill.alpha: 0.99 -> 0.5)" in err
    assert len(optuna.load_study(study_name="tiny", storage=storage_url).trials) == 1


def test_run_records_a_diverging_trial_as_failed_and_goes_on(cli, write_config, storage_url):
    config = write_config({"teacher.optimizer": "sgd", "teacher.lr": 1e12})
    code, _, err = cli("run", config, "--storage", storage_url, "--trials", "2", "--no-progress")
    assert code == 0
    trials = optuna.load_study(study_name="tiny", storage=storage_url).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL] * 2
    assert all("loss became nan" in t.user_attrs["fail_reason"] for t in trials)
    assert "trial 0 failed: teacher loss became nan in epoch 1" in err


def test_trial_command_prints_metrics_as_json(cli, tiny_config_file):
    code, out, _ = cli("trial", tiny_config_file, "--batch-size", "64", "--epochs", "2", "--format", "json")
    record = json.loads(out)
    assert code == 0 and record["batch_size"] == 64 and set(TRIAL_METRICS) <= set(record)
    code, out, _ = cli(
        "trial", tiny_config_file, "--batch-size", "64", "--epochs", "2", "--format", "json", "--split", "test"
    )
    on_test = json.loads(out)
    assert code == 0 and "student_test_acc" in on_test and "student_val_acc" not in on_test
    assert on_test["teacher_entropy"] == record["teacher_entropy"]  # same teacher, scored elsewhere


BAD_RUN_INPUTS = [
    # (config changes or raw text or a path, extra args, words the error line must contain)
    ("missing-file", [], ["config file", "not found"]),
    ({"raw": "name: [unclosed\n"}, [], ["invalid YAML at line 2"]),
    ({"distill.temprature": 4}, [], ["unknown key 'distill.temprature'", "did you mean 'temperature'"]),
    ({"data.name": "cifar11"}, [], ["data.name: unknown dataset 'cifar11'"]),
    (
        {"teacher.arch": "resnet"},
        [],
        ["teacher.arch: unknown architecture 'resnet'", "available: mlp, mlp-small, linear"],
    ),
    ({"search.epochs": [0, 5]}, [], ["search.epochs must be positive"]),
    ({"search.batch_size": [0, 8]}, [], ["search.batch_size must be positive"]),
    ({"student.epochs": -1}, [], ["student.epochs must be >= 1"]),
    ({"search.batch_size": [16, 8192]}, [], ["search.batch_size: 8192 is larger than the training split"]),
    ({"distill.alpha": 2}, [], ["distill.alpha must be within [0, 1], got 2.0"]),
    ({"distill.temperature": 0}, [], ["distill.temperature must be > 0"]),
    ({"distill.withheld_classes": [11]}, [], ["distill.withheld_classes: [11] not in the dataset"]),
    ({}, ["--storage", "nonsense"], ["--storage: malformed URL 'nonsense'"]),
    ({}, ["--storage", "postgresql+psycopg://bob:s3cret@127.0.0.1:1/test"], ["cannot open", "bob:***@"]),
    ({}, ["--trials", "0"], ["argument --trials: must be a positive integer, got '0'"]),
    ({}, ["--device", "tpu"], ["--device: unknown device 'tpu'"]),
    ({"early_stop": {"pruner": "median"}}, [], ["early_stop.pruner needs a single objective", "entropy_floor"]),
    ({"teacher.schedule": "cosin"}, [], ["teacher.schedule", "did you mean 'cosine'", "constant, exponential, cosine"]),
    ({}, ["--checkpoint-mb", "0"], ["--checkpoint-mb", "a positive integer"]),
]


@pytest.mark.parametrize(("changes", "args", "words"), BAD_RUN_INPUTS)
def test_run_bad_input_is_one_line_exit_2_and_writes_nothing(cli, write_config, tmp_path, changes, args, words):
    if changes == "missing-file":
        config = tmp_path / "nope.yaml"
    elif "raw" in changes:
        config = write_config(raw=changes["raw"])
    else:
        config = write_config(changes)
    db = tmp_path / "untouched.db"
    storage = [] if "--storage" in args else ["--storage", f"sqlite:///{db}"]
    code, out, err = cli("run", config, *storage, *args, "--no-progress")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert all(w in lines[0] for w in words), lines[0]
    assert "s3cret" not in err + out
    assert not db.exists()


def test_export_of_a_missing_study_or_storage_is_one_line(cli, tiny_config_file, storage_url, tmp_path):
    code, _, err = cli("export", "--storage", f"sqlite:///{tmp_path / 'none.db'}")
    assert code == 2 and "no database file" in err and not (tmp_path / "none.db").exists()
    assert cli("run", tiny_config_file, "--storage", storage_url, "--trials", "1", "--no-progress")[0] == 0
    code, _, err = cli("export", "--storage", storage_url, "--study", "nope")
    assert (
        code == 2
        and err.strip() == "sweetspot export: error: --study: no study named 'nope' (studies in this storage: tiny)"
    )


def test_bad_input_through_the_console_script_has_no_traceback(tmp_path):
    result = run_console_script("run", tmp_path / "missing.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("sweetspot run: error: config file") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "sweetspot.db").exists()


def _wsgi_get(app, path: str) -> tuple[str, dict]:
    """GET ``path`` from a WSGI app without a server: (status, JSON body)."""
    import io

    reply: dict = {}
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    body = b"".join(app(environ, lambda status, headers, exc_info=None: reply.setdefault("status", status)))
    return reply["status"], json.loads(body)


def test_optuna_dashboard_reads_the_study_with_its_metric_names(cli, tiny_config_file, storage_url):
    from optuna_dashboard import wsgi

    assert cli("run", tiny_config_file, "--storage", storage_url, "--trials", "2", "--no-progress")[0] == 0
    app = wsgi(storage_url)
    status, studies = _wsgi_get(app, "/api/studies")
    assert status.startswith("200")
    (summary,) = studies["study_summaries"]
    assert summary["study_name"] == "tiny"
    status, detail = _wsgi_get(app, f"/api/studies/{summary['study_id']}")
    assert status.startswith("200")
    assert detail["objective_names"] == ["student_val_acc", "missing_class_recall"]
    assert len(detail["trials"]) == 2
    attrs = {a["key"] for a in detail["trials"][0]["user_attrs"]}
    assert {"teacher_entropy", "missing_class_recall", "missing_class_recall_by_class", "seed"} <= attrs


def test_run_on_mnist_files_with_data_dir_and_a_missing_dataset_is_one_line(cli, write_config, storage_url, tmp_path):
    from tests.core.test_datasets import write_mnist

    config = write_config({"data.name": "mnist", "search.batch_size": [16, 32], "distill.withheld_classes": [3]})
    code, _, err = cli("run", config, "--storage", storage_url, "--data-dir", tmp_path / "empty", "--no-progress")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "mnist: files not found" in err and "--download" in err
    write_mnist(tmp_path / "files" / "MNIST" / "raw", n_train=100, n_test=30)
    code, out, err = cli(
        "run", config, "--storage", storage_url, "--data-dir", tmp_path / "files", "--trials", "2", "--no-progress"
    )
    assert code == 0, err
    assert "2 finished of 2 trials" in out


def test_a_convnet_that_does_not_fit_the_images_is_refused_before_the_storage(cli, write_config, tmp_path):
    config = write_config({"teacher": {"arch": "convnet", "channels": [4, 4, 4, 4], "pool": [1, 1, 1, 1]}})
    db = tmp_path / "untouched.db"
    code, _, err = cli("run", config, "--storage", f"sqlite:///{db}", "--no-progress")
    assert code == 2 and "shrink (8, 8) images to nothing" in err and not db.exists()


def test_a_small_convnet_teacher_runs_on_digits(cli, write_config, storage_url):
    config = write_config({"teacher": {"arch": "convnet", "channels": [8, 16], "pool": [1, 1], "hidden": [32]}})
    code, out, err = cli("run", config, "--storage", storage_url, "--trials", "1", "--no-progress")
    assert code == 0 and "1 finished of 1 trials" in out, err


def test_transfer_set_flags_override_the_config_and_are_checked(cli, tiny_config_file, write_config, storage_url):
    code, out, _ = cli(
        "trial", tiny_config_file, "--batch-size", "64", "--epochs", "2", "--format", "json", "--withheld", "0,1",
        "--examples-per-class", "5",
    )
    assert code == 0
    base = json.loads(cli("trial", tiny_config_file, "--batch-size", "64", "--epochs", "2", "--format", "json")[1])
    # the flags replace the config's withheld class 3: 0 and 1 get no k-less student, 3 gets one again
    assert set(json.loads(out)["missing_class_recall_by_class"]) == {str(k) for k in range(2, 10)}
    assert set(base["missing_class_recall_by_class"]) == {str(k) for k in range(10) if k != 3}
    code, out, err = cli("trial", tiny_config_file, "--batch-size", "64", "--epochs", "2", "--withheld", "none",
                         "--format", "json")
    assert code == 0, err  # the default objectives need no withheld class ...
    record = json.loads(out)
    assert record["student_withheld_acc"] is None and len(record["missing_class_recall_by_class"]) == 10
    withheld_objective = {"objectives": {"student_withheld_acc": "maximize"}}
    code, _, err = cli("trial", write_config(withheld_objective), "--batch-size", "64", "--epochs", "2", "--withheld",
                       "none")
    assert code == 2 and "needs distill.withheld_classes" in err  # ... an objective on the withheld classes does
    code, _, err = cli("trial", tiny_config_file, "--batch-size", "64", "--epochs", "2", "--withheld", "3,x")
    assert code == 2 and "--withheld: must be class numbers" in err
    code, _, err = cli("run", tiny_config_file, "--storage", storage_url, "--withheld", "12", "--no-progress")
    assert code == 2 and "[12] not in the dataset" in err
    assert cli("run", tiny_config_file, "--storage", storage_url, "--trials", "1", "--no-progress")[0] == 0
    code, _, err = cli("run", tiny_config_file, "--storage", storage_url, "--withheld", "0", "--no-progress")
    assert code == 2 and "distill.withheld_classes" in err and "different config" in err


def test_run_shares_teacher_paths_through_the_checkpoint_folder(
    cli, write_config, storage_url, tmp_path, artifacts_in_tmp
):
    config = write_config({"search.batch_size": [64, 64], "search.epochs": [1, 6], "n_trials": 6})
    assert cli("run", config, "--storage", storage_url, "--no-progress")[0] == 0
    study = optuna.load_study(study_name="tiny", storage=storage_url)
    epochs = [t.user_attrs["teacher_epochs"] for t in study.trials]
    assert all(e["trained"] + e["reused"] == t.params["epochs"] for e, t in zip(epochs, study.trials, strict=True))
    assert sum(e["reused"] for e in epochs) > 0  # one batch size: every later trial continues an earlier one
    assert list((artifacts_in_tmp / "checkpoints").glob("*.ckpt"))
    other = tmp_path / "no-share.db"
    assert (
        cli(
            "run", config, "--storage", f"sqlite:///{other}", "--no-progress", "--no-share", "--checkpoints",
            tmp_path / "unused",
        )[0]
        == 0
    )
    plain = optuna.load_study(study_name="tiny", storage=f"sqlite:///{other}")
    assert [t.values for t in plain.trials] == [t.values for t in study.trials]
    assert all(t.user_attrs["teacher_epochs"]["reused"] == 0 or "reused_from" in t.user_attrs for t in plain.trials)
    assert not (tmp_path / "unused").exists()


def test_a_pruned_trial_is_counted_and_reported(cli, write_config, storage_url):
    config = write_config(
        {"early_stop": {"entropy_floor": 0.9999}, "search.batch_size": [32, 32], "search.epochs": [3, 4]}
    )
    code, out, _ = cli("run", config, "--storage", storage_url, "--trials", "2", "--no-progress")
    assert code == 0
    study = optuna.load_study(study_name="tiny", storage=storage_url)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.PRUNED] * 2
    assert "after epoch" in study.trials[0].user_attrs["pruned_reason"]
    assert "0 finished of 2 trials" in out


@pytest.mark.parametrize("command", ["run", "worker"])
@pytest.mark.parametrize("where", ["missing-folder", "unreachable", "unreachable-named-folders"])
def test_a_refused_storage_url_leaves_no_folder_behind(cli, tiny_config_file, tmp_path, monkeypatch, command, where):
    """Issue 20: `run --storage sqlite:////nonexistent/dir/x.db` made the artifact folder beside the
    database, with its parents, before the URL was checked, so the URL passed and ran a whole study there."""
    monkeypatch.delenv("SWEETSPOT_ARTIFACTS")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    url = {"missing-folder": f"sqlite:///{tmp_path / 'nonexistent' / 'dir' / 'x.db'}"}.get(
        where, "postgresql+psycopg://postgres@127.0.0.1:1/test")  # port 1: nothing listens
    named = ("--artifacts", tmp_path / "a" / "b", "--checkpoints", tmp_path / "c" / "d") if "named" in where else ()
    before = sorted(tmp_path.rglob("*"))
    code, out, err = cli(command, tiny_config_file, "--storage", url, *named, "--no-progress")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    expected = "does not exist" if where == "missing-folder" else "cannot open"
    assert err.startswith(f"sweetspot {command}: error: --storage: ") and expected in err, err
    assert sorted(tmp_path.rglob("*")) == before  # no database, no artifact, checkpoint or named folder


@pytest.mark.parametrize("flag", ["--artifacts", "--checkpoints"])
def test_a_folder_that_cannot_be_made_is_refused_before_the_storage(cli, tiny_config_file, tmp_path, flag):
    (tmp_path / "a-file").write_text("x")
    db = tmp_path / "untouched.db"
    code, _, err = cli(
        "run", tiny_config_file, "--storage", f"sqlite:///{db}", flag, tmp_path / "a-file" / "sub", "--no-progress"
    )
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"sweetspot run: error: {flag}: cannot create the ") and "(Not a directory)" in err
    assert not db.exists()  # no study, no queued trials


def test_library_errors_name_the_flag_and_keep_their_cause_for_debug(cli, tmp_path):
    from sweetspot.cli import main
    from sweetspot.errors import StorageError

    code, _, err = cli("export", "--storage", "::not a url::")
    assert code == 2 and err.startswith("sweetspot export: error: --storage: malformed URL") and err.count("\n") == 1
    with pytest.raises(StorageError, match="^--storage: malformed URL") as caught:
        main(["export", "--storage", "::not a url::", "--debug"])
    chain = []
    error: BaseException | None = caught.value
    while error is not None:
        chain.append(type(error).__name__)
        error = error.__cause__
    # the flag's error, the library's own (same class), then what SQLAlchemy said
    assert chain == ["StorageError", "StorageError", "ArgumentError"]


def _worker_actions():
    from sweetspot.cli.options import SET_BY_SUPERVISOR, WORKER_GROUPS
    from sweetspot.cli.options import option_groups as _option_groups

    groups = _option_groups()
    return [a for g in WORKER_GROUPS for a in groups[g]._actions if a.dest not in SET_BY_SUPERVISOR]


def _sample_tokens(action) -> list[str]:
    """A value unlike the default for ``action``, as typed on a command line."""
    from sweetspot.cli.options import classes as _classes
    from sweetspot.cli.options import non_negative_int as _non_negative_int
    from sweetspot.cli.options import positive_int as _positive_int

    if action.nargs == 0:
        return [action.option_strings[0]]
    if action.type in (_positive_int, _non_negative_int):
        token = "7"
    elif action.type is _classes:
        token = "1,2"
    elif action.choices:
        token = next(c for c in action.choices if c != action.default)
    else:
        token = f"value-of-{action.dest}"
    return [token] if not action.option_strings else [action.option_strings[0], token]


@pytest.mark.parametrize("action", _worker_actions(), ids=lambda a: a.dest)
def test_every_worker_option_given_to_run_reaches_the_workers(action):
    from sweetspot.cli import build_parser, worker_argv

    parser = build_parser()
    run_args = parser.parse_args(["run", *_sample_tokens(action), "--workers", "3"])
    assert getattr(run_args, action.dest) != action.default  # the sample really changes it
    argv = worker_argv(run_args, "the-study")
    worker_args = parser.parse_args(["worker", *argv])
    assert getattr(worker_args, action.dest) == getattr(run_args, action.dest), argv
    assert worker_args.study == "the-study"


def test_worker_argv_passes_nothing_left_at_its_default_and_never_the_storage():
    from sweetspot.cli import build_parser, worker_argv

    args = build_parser().parse_args(
        [
            "run", "--storage", "postgresql+psycopg://u:s3cret@h/db", "--threads", "2", "--withheld", "none",
            "--workers", "2",
        ]
    )
    assert worker_argv(args, "s") == ["--study", "s", "--withheld", "none"]


def test_trial_table_shows_nested_values_one_per_row(cli, tiny_config_file):
    code, out, err = cli("trial", tiny_config_file, "--batch-size", "64", "--epochs", "1")
    assert code == 0, err
    rows = {line.split()[0]: line.split()[-1] for line in out.splitlines()[2:]}
    assert {"time_s.teacher", "time_s.total", "teacher_entropy_by_T.20", "teacher_epochs.trained"} <= set(rows)
    assert rows["teacher_epochs.trained"] == "1" and rows["batch_size"] == "64"
    assert max(map(len, out.splitlines())) < 60  # no dict spelt out on one line
    assert out.splitlines()[2].startswith("batch_size ")  # names left-aligned


def test_a_database_down_for_good_is_one_line_not_a_traceback(cli, tiny_config_file, postgres_url, study_name,
                                                                 quick_retries):
    """Every read of the trials fails, through all the retries: the command stops with one line and
    exit code 2; the study it created stays, with its config, for a later run to resume."""
    from tests.conftest import breaking_new_engines

    with breaking_new_engines(lambda statement, parameters: "FROM trials" in statement, times=10**6):
        code, _, err = cli("run", tiny_config_file, "--storage", postgres_url, "--study", study_name, "--trials", "1",
                           "--no-progress")
    assert code == 2, err
    assert err.strip().splitlines() == [
        "sweetspot run: error: database unreachable after 6 tries: the connection is closed"]
    assert "sweetspot_config" in optuna.load_study(study_name=study_name, storage=postgres_url).user_attrs
