import json

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import create_trial

from sweetspot.errors import ConfigError
from sweetspot.results.export import SELECTION_RULE, export_format, ordered_front
from sweetspot.results.export_file import read_export

DISTS = {"batch_size": CategoricalDistribution([16, 32]), "epochs": IntDistribution(1, 9)}


def _study(directions, values):
    study = optuna.create_study(directions=directions)
    for v in values:
        study.add_trial(create_trial(values=v, params={"batch_size": 16, "epochs": 1}, distributions=DISTS))
    return study


def test_ordered_front_sorts_by_the_first_objective_then_the_next():
    # trial 2 is dominated by trial 1; trials 0, 1, 3 form the front
    study = _study(["maximize", "maximize"], [[0.5, 0.9], [0.8, 0.6], [0.7, 0.5], [0.1, 1.0]])
    assert [t.number for t in ordered_front(study)] == [1, 0, 3]


def test_ordered_front_respects_minimisation_and_ties():
    study = _study(["minimize", "maximize"], [[0.3, 0.2], [0.1, 0.5], [0.1, 0.5]])
    assert [t.number for t in ordered_front(study)] == [1, 2]  # equal values: lower number first


def test_ordered_front_lists_a_reused_result_once():
    study = optuna.create_study(directions=["maximize"])
    for attrs in ({}, {"reused_from": 0}, {}):
        study.add_trial(
            create_trial(values=[0.9], params={"batch_size": 16, "epochs": 1}, distributions=DISTS, user_attrs=attrs)
        )
    assert [t.number for t in ordered_front(study)] == [0, 2]


def test_ordered_front_single_objective_keeps_all_best_ties():
    study = _study(["maximize"], [[0.5], [0.9], [0.9]])
    assert [t.number for t in ordered_front(study)] == [1, 2]


def test_export_format_from_flag_or_suffix():
    assert export_format(None, None) == "yaml"
    assert export_format("best.json", None) == "json"
    assert export_format("best.json", "yaml") == "yaml"
    with pytest.raises(ConfigError, match="unknown export format 'xml' \\(allowed: yaml, json\\)"):
        export_format("best.xml", "xml")


def test_export_round_trip_yaml_and_json(cli, tiny_config_file, storage_url, tmp_path):
    code, _, err = cli("run", tiny_config_file, "--storage", storage_url, "--trials", "3", "--no-progress")
    assert code == 0, err
    docs = {}
    for fmt in ("yaml", "json"):
        out = tmp_path / f"best.{fmt}"
        code, stdout, err = cli("export", "--storage", storage_url, "--out", out)
        assert code == 0, err
        assert f"to {out}" in stdout
        docs[fmt] = read_export(out)
    assert docs["yaml"] == docs["json"]
    doc = docs["yaml"]
    assert json.loads(json.dumps(doc)) == doc  # plain data only
    study = optuna.load_study(study_name="tiny", storage=storage_url)
    front = ordered_front(study)
    assert [t["trial"] for t in doc["teachers"]] == [t.number for t in front]
    assert doc["best_trial"] == front[0].number and doc["selection_rule"] == SELECTION_RULE
    assert [t["best"] for t in doc["teachers"]] == [True] + [False] * (len(front) - 1)
    first, trial = doc["teachers"][0], front[0]
    assert first["batch_size"] == trial.params["batch_size"] and first["epochs"] == trial.params["epochs"]
    assert first["recipe"]["seed"] == trial.user_attrs["seed"]
    assert first["recipe"]["arch"] == "mlp" and first["recipe"]["options"] == {"width": 32, "depth": 2}
    assert first["recipe"]["dataset"] == "digits" and first["recipe"]["split"]["seed"] == 0
    assert first["values"] == dict(zip(study.metric_names, trial.values))
    assert first["metrics"]["teacher_entropy"] == trial.user_attrs["teacher_entropy"]
    for teacher in doc["teachers"]:
        assert set(teacher["test"]) == {
            "teacher_acc",
            "student_acc",
            "student_withheld_acc",
            "student_teacher_agreement",
            "missing_class_recall",
            "missing_class_recall_corrected",
            "missing_class_acc",
            "missing_class_recall_by_class",
            "reproduces_study",
        }
        assert teacher["test"]["reproduces_study"] is True
        assert 0 <= teacher["test"]["student_acc"] <= 1
    # the export is a config: its config section loads as the study's own
    assert doc["config"] == yaml.safe_load(yaml.safe_dump(study.user_attrs["sweetspot_config"]))


def test_export_to_stdout_is_yaml(cli, tiny_config_file, storage_url):
    assert cli("run", tiny_config_file, "--storage", storage_url, "--trials", "1", "--no-progress")[0] == 0
    code, stdout, _ = cli("export", "--storage", storage_url, "--study", "tiny")
    assert code == 0 and yaml.safe_load(stdout)["study"] == "tiny"


def test_export_confirm_retrains_each_teacher_with_more_seeds_and_ranks_by_the_mean(cli, tiny_config_file, storage_url,
                                                                                   tmp_path):
    import statistics

    from sweetspot.results.export import CONFIRM_RULE

    assert cli("run", tiny_config_file, "--storage", storage_url, "--trials", "4", "--no-progress")[0] == 0
    out = tmp_path / "confirmed.yaml"
    code, stdout, err = cli("export", "--storage", storage_url, "--out", out, "--confirm", "3")
    assert code == 0, err
    assert "over 3 teacher seeds" in stdout
    doc = read_export(out)
    assert doc["selection_rule"] == CONFIRM_RULE
    study = optuna.load_study(study_name="tiny", storage=storage_url)
    names = list(doc["objectives"])
    for entry in doc["teachers"]:
        confirmed = entry["confirmed"]
        trial = study.trials[entry["trial"]]
        assert len(confirmed["teacher_seeds"]) == 3 == len(set(confirmed["teacher_seeds"]))
        assert confirmed["teacher_seeds"][0] == trial.user_attrs["seed"]  # the study's own seed first ...
        for name in names:
            values = confirmed["values"][name]
            assert values[0] == trial.user_attrs[name]  # ... whose figures the study holds
            assert confirmed["mean"][name] == pytest.approx(statistics.fmean(values))
            assert confirmed["sd"][name] == pytest.approx(statistics.stdev(values))
        assert confirmed["values"]["teacher_entropy"][1] != confirmed["values"]["teacher_entropy"][0]  # other teachers
    # ranked by the mean of the first objective (maximised), best first
    means = [(-e["confirmed"]["mean"][names[0]], -e["confirmed"]["mean"][names[1]], e["trial"])
             for e in doc["teachers"]]
    assert means == sorted(means)
    assert [e["best"] for e in doc["teachers"]] == [True] + [False] * (len(doc["teachers"]) - 1)
    assert doc["best_trial"] == doc["teachers"][0]["trial"]
