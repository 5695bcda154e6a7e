"""One distillation trial run by sweetspot and by a conventional pipeline: wall times and accuracies.

The trial (issue 6): Fashion-MNIST; teacher an MLP of 6 hidden layers of 512, Adam 1e-3, batch 256,
5 epochs; student a single linear layer (Adam 1e-2, batch 256), 10 epochs, class 0 withheld from
the transfer set, T = 9, alpha = 0.99 on the soft term; both scored on the official test images.

The conventional pipeline is written the way most distillation code is: torchvision's dataset with a
``ToTensor`` + ``Normalize`` transform, ``DataLoader``s (shuffled, batch 256), the teacher's forward
pass on every distillation step. It trains on 48,000 seeded training images, as many as sweetspot's
training split, so both do the same number of steps. Both timings include loading the data.
Target: sweetspot at least 4x faster at equal accuracy (within 1 point).

    .venv/bin/python benchmarks/vs_conventional.py [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch
import torch.nn.functional as F

from sweetspot.config import DistillConfig, StudentConfig, StudyConfig, config_from_dict
from sweetspot.models import linear, mlp
from sweetspot.training import kd_loss

SEED, TEACHER_EPOCHS, STUDENT_EPOCHS, BATCH, T, ALPHA, WITHHELD = 0, 5, 10, 256, 9.0, 0.99, 0


def trial_config(data_dir: str | None) -> StudyConfig:
    config = config_from_dict({"data": {"name": "fashion-mnist", "data_dir": data_dir}})
    student = StudentConfig(arch="linear", optimizer="adam", lr=0.01, epochs=STUDENT_EPOCHS, batch_size=BATCH)
    return replace(config, student=student, distill=DistillConfig(temperature=T, alpha=ALPHA, withheld_classes=(WITHHELD,)))


def sweetspot_trial(config: StudyConfig) -> tuple[float, float, float]:
    from sweetspot.data import load_splits
    from sweetspot.objective import TeacherParams, run_trial

    start = time.perf_counter()
    load_splits.cache_clear()
    splits = load_splits(config.data, config.seed)
    metrics = run_trial(config, splits, TeacherParams(BATCH, TEACHER_EPOCHS), SEED, split="test").metrics
    return time.perf_counter() - start, metrics["student_val_acc"], metrics["student_withheld_acc"]


def conventional_trial(root: str) -> tuple[float, float, float]:
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    start = time.perf_counter()
    torch.manual_seed(SEED)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.2860,), (0.3530,))])
    train = datasets.FashionMNIST(root, train=True, transform=transform)
    test = datasets.FashionMNIST(root, train=False, transform=transform)
    chosen = torch.randperm(len(train), generator=torch.Generator().manual_seed(SEED))[:48_000]
    teacher = mlp((1, 28, 28), 10)
    optimizer = torch.optim.Adam(teacher.parameters(), lr=1e-3)
    loader = DataLoader(Subset(train, chosen.tolist()), batch_size=BATCH, shuffle=True)
    teacher.train()
    for _ in range(TEACHER_EPOCHS):
        for x, y in loader:
            loss = F.cross_entropy(teacher(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    teacher.eval()
    transfer = [int(i) for i in chosen if int(train.targets[i]) != WITHHELD]
    student = linear((1, 28, 28), 10)
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-2)
    loader = DataLoader(Subset(train, transfer), batch_size=BATCH, shuffle=True)
    for _ in range(STUDENT_EPOCHS):
        for x, y in loader:
            with torch.no_grad():
                soft = teacher(x)  # the teacher runs on every distillation step
            loss = kd_loss(student(x), soft, y, T, ALPHA)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    student.eval()
    correct = total = correct_0 = total_0 = 0
    with torch.no_grad():
        for x, y in DataLoader(test, batch_size=1024):
            hit = student(x).argmax(dim=1) == y
            correct += int(hit.sum())
            total += len(y)
            correct_0 += int(hit[y == WITHHELD].sum())
            total_0 += int((y == WITHHELD).sum())
    return time.perf_counter() - start, correct / total, correct_0 / total_0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="where the Fashion-MNIST files are (default: as sweetspot finds them)")
    args = parser.parse_args()
    from sweetspot.sources import default_root, load_mnist_family

    load_mnist_family("fashion-mnist", "FashionMNIST", args.data_dir, False)  # files checked, unpacked where needed
    root = args.data_dir or str(default_root())
    print(f"torch threads {torch.get_num_threads()}; teacher 6 x 512 MLP, batch {BATCH}, {TEACHER_EPOCHS} epochs; "
          f"linear student, {STUDENT_EPOCHS} epochs, class {WITHHELD} withheld, T = {T:g}, alpha = {ALPHA}")
    ours = sweetspot_trial(trial_config(args.data_dir))
    theirs = conventional_trial(root)
    print(f"{'pipeline':<13} {'wall s':>7} {'student acc':>12} {'acc class 0':>12}")
    for name, (seconds, acc, acc_0) in (("sweetspot", ours), ("conventional", theirs)):
        print(f"{name:<13} {seconds:>7.1f} {acc:>12.4f} {acc_0:>12.4f}")
    print(f"ratio {theirs[0] / ours[0]:.2f} (conventional / sweetspot wall time; target >= 4); "
          f"accuracy difference {100 * (ours[1] - theirs[1]):+.2f} points overall, {100 * (ours[2] - theirs[2]):+.2f} on class 0")


if __name__ == "__main__":
    main()
