from sweetspot.config import StudyConfig, config_from_dict
from sweetspot.config.metric_registry import ENTROPY_GRID, TRIAL_METRICS
from sweetspot.service.notes import study_note, trial_note


def test_study_note_explains_objectives_search_space_and_reading():
    config = StudyConfig()
    note = study_note(config)
    assert note.startswith("# sweetspot study: digits")
    for metric in config.objectives:
        assert f"`{metric}`" in note
    assert "16, 32, 64, 128, 256, 512, 1024" in note and "1 to 100" in note
    assert "missing classes: all; withheld classes: none" in note and "loss `hinton`" in note
    assert "How to read the trials" in note
    listed = study_note(config_from_dict({"distill": {"missing_classes": [2, 4], "withheld_classes": [3]}}))
    assert "missing classes: 2, 4; withheld classes: 3" in listed
    searched = config_from_dict({"search": {"temperature": [2, 20], "teacher_lr": [0.0001, 0.01]}})
    assert "temperature: 2 to 20" in study_note(searched) and "learning rate: 0.0001 to 0.01" in study_note(searched)


def test_trial_note_has_the_entropy_grid_and_every_metric():
    metrics = {m: 0.5 for m in TRIAL_METRICS} | {"missing_class_recall_corrected": None,
                                                 "teacher_entropy_by_T": {str(t): t / 100 for t in ENTROPY_GRID},
                                                 "missing_class_recall_by_class": {"0": 0.25, "7": 0.75},
                                                 "missing_class_recall_corrected_by_class": {"0": 0.5, "7": 1.0}}
    note = trial_note({"batch_size": 64, "epochs": 7}, metrics, 9)
    assert note.startswith("# Teacher: batch size 64, 7 epochs")
    assert (
        "| T | 1 | 2 | 4 | 8 | 16 | 20 |" in note
        and "| entropy | 0.010 | 0.020 | 0.040 | 0.080 | 0.160 | 0.200 |" in note
    )
    assert all(f"| `{m}` |" in note for m in TRIAL_METRICS)
    assert "recognises it **0.5000** of the time (mean over k), **-** after the bias correction" in note
    assert "| 0 | 0.2500 | 0.5000 |" in note and "| 7 | 0.7500 | 1.0000 |" in note
    assert "reused" not in note
    assert "Same parameters as trial 3" in trial_note({"batch_size": 64, "epochs": 7}, metrics | {"reused_from": 3}, 9)


def test_a_trial_of_several_teacher_seeds_shows_each_figure_with_its_sd():
    sd = {m: 0.125 for m in TRIAL_METRICS} | {"teacher_ece": None}
    metrics = {m: 0.5 for m in TRIAL_METRICS} | {"teacher_seeds": {"seeds": [1, 2, 3], "values": {}, "sd": sd}}
    note = trial_note({"batch_size": 64, "epochs": 7}, metrics, 9)
    assert "recognises it **0.5000 ± 0.1250** of the time" in note
    assert "mean over 3 teacher seeds" in note
    assert "| `student_val_acc` | 0.5000 ± 0.1250 |" in note and "| `teacher_ece` | 0.5000 |" in note
    one = {"seeds": [1], "values": {}, "sd": {"student_val_acc": None}}
    one_seed = trial_note({"batch_size": 64, "epochs": 7}, metrics | {"teacher_seeds": one}, 9)
    assert "±" not in one_seed and "teacher seeds" not in one_seed
