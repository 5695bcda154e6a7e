"""What a trial records: every metric an objective can be chosen among, and the grouped records beside them.

The one list the config's check, the objective, the notes, the report and the docs all read.
"""

from __future__ import annotations

from typing import Any

ENTROPY_GRID: tuple[int, ...] = (1, 2, 4, 8, 16, 20)
# Name -> what it is: the scalar metrics, one user attribute each. Besides these, a trial stores
# RECORD_ATTRS (grouped, to keep a trial's storage writes few: each attribute is one transaction).
TRIAL_METRICS: dict[str, str] = {
    "teacher_val_acc": "teacher accuracy on the validation split",
    "teacher_entropy": "mean normalised entropy of the soft labels at the study's T (transfer set)",
    "teacher_nontarget_entropy": "normalised entropy over the non-target classes at T",
    "teacher_gamma": "off-target mass, the matching label-smoothing factor (Mueller et al.)",
    "teacher_ece": "expected calibration error at T=1, 15 bins (validation split)",
    "student_val_acc": "accuracy of the student distilled on the whole transfer set (validation split, all classes)",
    "student_withheld_acc": "that student's accuracy on the withheld classes (validation split)",
    "student_teacher_agreement": "top-1 agreement of that student and the teacher (validation split)",
    "label_student_val_acc": "accuracy of the same student trained on the labels alone: same examples, schedule "
    "and random numbers, alpha 0 (validation split)",
    "kd_gain": "student_val_acc minus label_student_val_acc: what distilling from this teacher bought",
    "missing_class_recall": "mean over the missing classes k of the k-less student's recall on k (Table 5's mean)",
    "missing_class_recall_corrected": "the same after Hinton's bias correction of k (a shift chosen without labels)",
    "missing_class_acc": "mean over the missing classes k of the k-less student's accuracy on all classes",
}
# What a teacher alone gives. A study whose objectives are all of these trains no student: a trial costs
# its teacher only, and the student metrics are recorded as null. (The teacher's validation accuracy
# predicted the student's with Spearman's rho 0.90 on Fashion-MNIST with 50 labels per class: docs/results.md.)
TEACHER_METRICS = ("teacher_val_acc", "teacher_entropy", "teacher_nontarget_entropy", "teacher_gamma", "teacher_ece")
STUDENT_METRICS = tuple(m for m in TRIAL_METRICS if m not in TEACHER_METRICS)
RECORD_ATTRS: dict[str, str] = {
    "teacher_entropy_by_T": 'normalised soft-label entropy at each T of ENTROPY_GRID: {"1": ..., "20": ...}',
    "time_s": 'wall time of each phase: {"teacher", "soft_labels", "student", "total"}',
    "seed": "the trial's seed",
    "teacher_epochs": 'teacher epochs trained by this trial and reused from a stored checkpoint: {"trained", "reused"}',
    "missing_class_recall_by_class": "recall of each missing class k by the k-less student: {\"0\": ..., \"9\": ...}",
    "missing_class_recall_corrected_by_class": 'the same after the bias correction: {"0": ..., "9": ...}',
    "teacher_seeds": 'with search.teacher_seeds N > 1 only: the N seeds (the trial\'s own first), each scalar '
    'metric\'s value per seed and their sd (the metric itself is their mean): {"seeds", "values", "sd"}',
}


def trains_students(objectives: dict[str, Any]) -> bool:
    """Whether a trial distils students: only when an objective needs one (``TEACHER_METRICS``)."""
    return any(metric not in TEACHER_METRICS for metric in objectives)
