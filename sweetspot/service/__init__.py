"""The Optuna service: storage, study, objective, workers, recovery, the storage proxy and retries."""
