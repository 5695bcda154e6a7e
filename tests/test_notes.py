from sweetspot.config import ENTROPY_GRID, TRIAL_METRICS, StudyConfig, config_from_dict
from sweetspot.notes import study_note, trial_note


def test_study_note_explains_objectives_search_space_and_reading():
    config = StudyConfig()
    note = study_note(config)
    assert note.startswith("# sweetspot study: digits")
    for metric in config.objectives:
        assert f"`{metric}`" in note
    assert "16, 32, 64, 128, 256, 512, 1024" in note and "1 to 100" in note
    assert "withheld classes: 3, 5, 8" in note and "How to read the trials" in note
    searched = config_from_dict({"search": {"temperature": [2, 20], "teacher_lr": [0.0001, 0.01]}})
    assert "temperature: 2 to 20" in study_note(searched) and "learning rate: 0.0001 to 0.01" in study_note(searched)


def test_trial_note_has_the_entropy_grid_and_every_metric():
    metrics = {m: 0.5 for m in TRIAL_METRICS} | {"student_withheld_acc": None,
                                                 "teacher_entropy_by_T": {str(t): t / 100 for t in ENTROPY_GRID}}
    note = trial_note({"batch_size": 64, "epochs": 7}, metrics, 9)
    assert note.startswith("# Teacher: batch size 64, 7 epochs")
    assert (
        "| T | 1 | 2 | 4 | 8 | 16 | 20 |" in note
        and "| entropy | 0.010 | 0.020 | 0.040 | 0.080 | 0.160 | 0.200 |" in note
    )
    assert all(f"| `{m}` |" in note for m in TRIAL_METRICS)
    assert "on the withheld classes **-**" in note
    assert "reused" not in note
    assert "Same parameters as trial 3" in trial_note({"batch_size": 64, "epochs": 7}, metrics | {"reused_from": 3}, 9)
