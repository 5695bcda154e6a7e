"""`sweetspot export`, `teacher`, `report` and `copy`: what a study leaves, written out."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sweetspot.assembly import given
from sweetspot.cli.command import Command
from sweetspot.cli.options import FLAGS, non_negative_int, positive_int, with_data_flags
from sweetspot.cli.tables import baselines_table, figure


class Export(Command):
    name = "export"
    help = "write the best teacher configuration(s)"
    groups = ("storage", "compute", "common")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--out", metavar="FILE", help="output file (default: standard output)")
        parser.add_argument("--format", help="yaml | json (default: from --out's suffix, else yaml)")
        parser.add_argument("--confirm", type=positive_int, metavar="N",
                            help="retrain each Pareto teacher with N teacher seeds and rank them by the means "
                            "(default: off)")

    def take_action(self, args: argparse.Namespace) -> int:
        from sweetspot import assembly
        from sweetspot.core.atomic_files import write_atomically
        from sweetspot.results.export import export_format, render

        with given("--format"):
            fmt = export_format(args.out, args.format)
        storage, url = assembly.open_storage(args.storage, FLAGS, must_exist=True)
        study, config = assembly.load_study(storage, args.study, FLAGS)
        config = with_data_flags(args, config)
        made = assembly.export(study, config, url, args.confirm, device=args.device, threads=args.threads, names=FLAGS)
        document = made.document
        text = render(document, fmt)
        if not args.out:
            sys.stdout.write(text)
            return 0
        with given("--out"):
            write_atomically(Path(args.out), text)
        best = document["teachers"][0]
        first = next(iter(config.objectives))
        mean = f"; mean {first} over {args.confirm} teacher seeds {figure(best['confirmed']['mean'][first])} " \
               f"(sd {figure(best['confirmed']['sd'][first])})" if args.confirm else ""
        shown = first if first in best["test"] else "student_acc"
        print(
            f"wrote {made.front} teacher(s) of study {study.study_name!r} to {args.out}; best: trial "
            f"{best['trial']} (batch {best['batch_size']}, {best['epochs']} epochs), test {shown} "
            f"{figure(best['test'][shown])}{mean}"
        )
        print(f"beside the baselines (validation split):\n{baselines_table(study, made.reference)}")
        return 0


class Teacher(Command):
    name = "teacher"
    help = "write the weights of an exported teacher"
    groups = ("storage", "compute", "common")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("file", metavar="FILE", help="a `sweetspot export` file")
        parser.add_argument("--trial", type=non_negative_int, metavar="N",
                            help="the teacher of trial N (default: the best)")
        parser.add_argument("--out", metavar="FILE", help="weights file (default: teacher-trialN.pt)")

    def take_action(self, args: argparse.Namespace) -> int:
        from sweetspot import assembly
        from sweetspot.core.trial import prepare
        from sweetspot.results.export_file import read_export
        from sweetspot.results.teachers import check_figures, figures, pick_teacher, retrain, save_weights, wrap
        from sweetspot.service.artifacts import fetch_teacher_weights, load_weights

        with given("FILE"):
            document = read_export(args.file)
        with given("--trial"):
            chosen = pick_teacher(document, args.trial)
        config = with_data_flags(args, chosen.config)
        splits = prepare(config, assembly.setup_compute(args.device, args.threads, FLAGS))
        out = Path(args.out or f"teacher-trial{chosen.trial}.pt")
        teacher, source = None, "retrained from its recipe"
        if args.storage or os.environ.get("SWEETSPOT_STORAGE"):  # the study's own weights, when its store has them
            from sweetspot.core.models import build_model

            storage, url = assembly.open_storage(args.storage, FLAGS, must_exist=True)
            study, _ = assembly.load_study(storage, args.study or document.get("study"), FLAGS)
            frozen = next((t for t in study.get_trials(deepcopy=False) if t.number == chosen.trial), None)
            fetched = None
            if frozen is not None:
                fetched = fetch_teacher_weights(assembly.artifact_store(url, args.artifacts, FLAGS), storage, frozen,
                                                out.with_name(f".{out.name}.download"))
            if fetched is not None:
                teacher = build_model(chosen.net, splits.input_shape, splits.n_classes).to(splits.x_train.device)
                teacher.load_state_dict(load_weights(fetched))
                fetched.unlink()
                source = "fetched from the artifact store"
        if teacher is None:
            teacher = retrain(chosen, splits)
        found = figures(teacher, config, splits, chosen.temperature)
        check_figures(found, chosen.recorded, chosen.trial)
        with given("--out"):
            save_weights(wrap(teacher, splits), out)
        print(
            f"wrote trial {chosen.trial}'s teacher ({source}; validation accuracy {found['teacher_val_acc']:.4f}, "
            f"entropy at T={chosen.temperature:g} {found['teacher_entropy']:.4f}, as the export records) to {out}"
        )
        return 0


class Report(Command):
    name = "report"
    help = "write a study's figures and an HTML report"
    groups = ("storage", "common")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--out", default="report", metavar="DIR", help="output folder (default: report)")

    def take_action(self, args: argparse.Namespace) -> int:
        from sweetspot import assembly
        from sweetspot.results.report import write_report
        from sweetspot.service.study import mask_url

        storage, url = assembly.open_storage(args.storage, FLAGS, must_exist=True)
        study, config = assembly.load_study(storage, args.study, FLAGS)
        paths = write_report(study, config, Path(args.out), mask_url(url))
        print(
            f"wrote the report of study {study.study_name!r}: {paths[-1]} "
            f"(figures: {', '.join(p.name for p in paths[:-1])})"
        )
        return 0


class Copy(Command):
    name = "copy"
    help = "copy a study to another storage (a backup, or one SQLite file to share)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--from", dest="source", required=True, metavar="URL", help="the storage the study is in")
        parser.add_argument("--to", dest="target", required=True, metavar="URL", help="the storage to copy it into")
        parser.add_argument("--study", metavar="NAME", help="the study to copy (default: the source's only study)")
        parser.add_argument("--to-study", metavar="NAME", help="its name in the destination (default: the same)")
        parser.add_argument("--artifacts", metavar="DIR",
                            help="the source's artifact folder (default: as for --storage URL of `run`)")
        parser.add_argument("--to-artifacts", metavar="DIR",
                            help="the destination's artifact folder (default: likewise)")

    def take_action(self, args: argparse.Namespace) -> int:
        from sweetspot.assembly import quiet_optuna
        from sweetspot.results.backup import copy_study
        from sweetspot.service.artifacts import artifact_dir
        from sweetspot.service.study import load_study, mask_url, open_storage

        quiet_optuna()
        with given("--from"):
            source = open_storage(args.source, must_exist=True)
        with given("--study"):
            study, _ = load_study(source, args.study)  # a sweetspot study, or the storage's only one
        with given("--to"):
            target = open_storage(args.target)
        name = args.to_study or study.study_name
        folders = (artifact_dir(args.source, args.artifacts), artifact_dir(args.target, args.to_artifacts))
        with given("--to-study"):
            copied = copy_study(source, study.study_name, target, name, folders)
        print(
            f"copied study {study.study_name!r} to {name!r} in {mask_url(args.target)}: {copied.trials} trials, "
            f"{copied.notes} trial notes, {copied.artifacts} artifact files"
            + (f" into {folders[1]}/" if copied.artifacts else "")
            + (f" ({copied.retired} teacher weights were retired by --keep-weights before, and are retrained by "
               "`sweetspot teacher` when asked for)" if copied.retired else "")
        )
        if copied.running:
            print(f"note: {copied.running} trials were RUNNING in the source and are RUNNING in the copy",
                  file=sys.stderr)
        return 0
