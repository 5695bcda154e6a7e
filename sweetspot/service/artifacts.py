"""A trial's files in Optuna's artifact store: the teacher's weights and a picture of its soft labels.

The store is a folder next to an SQLite study (``studies.db`` -> ``studies-artifacts/``), or the
folder ``--artifacts`` / ``$SWEETSPOT_ARTIFACTS`` names (for PostgreSQL: one that every worker
machine mounts). optuna-dashboard shows the files on each trial's page. Weights are a state dict,
loaded back only with ``torch.load(..., weights_only=True)``: no pickled code runs.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore, download_artifact, get_all_artifact_meta, upload_artifact
from optuna.artifacts.exceptions import ArtifactNotFound
from sqlalchemy.engine import make_url
from torch import nn

from sweetspot.errors import FileError

ARTIFACTS_ENV = "SWEETSPOT_ARTIFACTS"
WEIGHTS_FILE = "teacher.pt"
SOFT_LABELS_FILE = "soft-labels.png"


def artifact_dir(storage_url: str, override: str | None = None) -> Path:
    """``--artifacts``, else ``$SWEETSPOT_ARTIFACTS``, else beside an SQLite file, else ./sweetspot-artifacts."""
    chosen = override or os.environ.get(ARTIFACTS_ENV)
    if chosen:
        return Path(chosen)
    url = make_url(storage_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        db = Path(url.database)
        return db.with_name(f"{db.stem}-artifacts")
    return Path("sweetspot-artifacts")


def open_artifact_store(path: Path) -> FileSystemArtifactStore:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FileError(f"cannot create the artifact folder {str(path)!r} ({exc.strerror})") from exc
    return FileSystemArtifactStore(str(path))


def save_trial_artifacts(
    store: FileSystemArtifactStore,
    trial: optuna.Trial,
    teacher: nn.Module,
    soft_labels: torch.Tensor,
    class_names: list[str],
    temperature: float,
) -> None:
    """Upload the teacher's state dict and the picture of its mean soft labels per class."""
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / WEIGHTS_FILE
        torch.save(cpu_state_dict(teacher), weights)
        picture = Path(tmp) / SOFT_LABELS_FILE
        draw_soft_labels(soft_labels, class_names, temperature, picture)
        upload_artifact(
            artifact_store=store, file_path=str(weights), study_or_trial=trial, mimetype="application/octet-stream"
        )
        upload_artifact(artifact_store=store, file_path=str(picture), study_or_trial=trial, mimetype="image/png")


def fetch_teacher_weights(
    store: FileSystemArtifactStore, storage: optuna.storages.BaseStorage, trial: optuna.trial.FrozenTrial, into: Path
) -> Path | None:
    """Download a trial's stored teacher weights to ``into``; None if it has none (or had, and they
    were deleted once the trial fell out of the study's best ``--keep-weights``, see disk.py)."""
    for meta in get_all_artifact_meta(trial, storage=storage):
        if meta.filename == WEIGHTS_FILE:
            try:
                download_artifact(artifact_store=store, artifact_id=meta.artifact_id, file_path=str(into))
            except ArtifactNotFound:
                return None
            return into
    return None


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights as a plain state dict on the CPU: the form every weights file of sweetspot has."""
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def load_weights(path: Path) -> dict[str, Any]:
    """A teacher state dict, read without unpickling arbitrary objects."""
    return torch.load(path, map_location="cpu", weights_only=True)


def draw_soft_labels(soft_labels: torch.Tensor, class_names: list[str], temperature: float, path: Path) -> None:
    """The mean soft-label vector of each true class (rows) over the classes (columns), as the
    paper's Tables 2 and 3: the diagonal is the confidence, the rest the similarity labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = soft_labels.detach().cpu().numpy()
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(0.45 * n + 2.2, 0.42 * n + 1.2))
    ax.imshow(values, cmap="magma", vmin=0, vmax=max(float(values.max()), 1e-6))
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                f"{values[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=6,
                color="black" if values[i, j] > 0.6 * values.max() else "white",
            )
    ax.set(
        xticks=range(n),
        yticks=range(n),
        xlabel="soft label of class",
        ylabel="input class",
        title=f"mean soft labels at T = {temperature:g}",
    )
    ax.set_xticklabels(class_names, rotation=90, fontsize=7)
    ax.set_yticklabels(class_names, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
