"""The ML core: data, models, training, students, metrics, teacher paths, checkpoints and one trial.

Nothing here imports Optuna: a trial is a function of its config, its data and its seeds.
"""
