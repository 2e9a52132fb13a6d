"""Command line: `python -m seqrec synth | prepare | train | run | report | validate | demo`.

Every command is a thin wrapper over a package function; bad input ends with one sentence on
stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import torch

from seqrec.app import build_report, resolved_options, run_grid
from seqrec.app.verdicts import verdicts_path
from seqrec.config import DEFAULT_PROFILE
from seqrec.data.synthetic import SynthConfig, write_synthetic
from seqrec.experiment import select
from seqrec.experiments import EXPERIMENTS, grid
from seqrec.models.registry import MODEL_NAMES
from seqrec.notebook import run_demo
from seqrec.plan import make_plan, plan_lines
from seqrec.report.validation import (
    validation_checks,
    validation_sentences,
    write_validation_report,
)
from seqrec.runner import (
    RunOptions,
    Sources,
    check_writable,
    failed_count,
    plan,
    split_of_each,
    versions_of_finished,
)
from seqrec.train.stages import MEMORY_SETTINGS, is_out_of_memory
from seqrec.validate import describe_size, validation_size


def _add_profile(p: argparse.ArgumentParser) -> None:
    axes = ", ".join(f"{e.name}: {e.axis}" for e in EXPERIMENTS.values())
    p.add_argument("--profile", default=DEFAULT_PROFILE,
                   help="settings profile: smoke (tiny, CPU) or thesis (the thesis' sizes)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any setting, e.g. --set lr=0.01 (repeatable). The setting an "
                        f"experiment varies ({axes}) takes a comma list of the values to run, "
                        "e.g. --set seq_len=10,20 for exp4; every run is labelled with the "
                        "value it trains with")


def _add_data_out(p: argparse.ArgumentParser, data_required: bool = False) -> None:
    p.add_argument("--data", required=data_required, default=None,
                   help="raw log: the LastFM-1K TSV or a user,item,timestamp CSV/TSV "
                        "(default: the built-in generated data)")
    p.add_argument("--out", required=True, help="output folder (caches, runs, report)")


def build_parser() -> argparse.ArgumentParser:
    """The parser; experiment choices are read from the registry (seqrec/experiments.py)."""
    experiment_choices = (*EXPERIMENTS, "all")
    parser = argparse.ArgumentParser(
        prog="python -m seqrec",
        description="Long- and short-term dependencies for sequential recommendation: "
                    "the thesis' experiments on LastFM-1K or generated data.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("synth", help="write a generated log in the LastFM-1K format")
    p.add_argument("--out", required=True, help="path of the TSV file to write")
    p.add_argument("--rows", type=int, default=None, help="number of rows")
    p.add_argument("--users", type=int, default=None, help="number of users")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("prepare", help="read, cache and prepare an experiment's splits")
    _add_data_out(p)
    p.add_argument("--experiment", required=True, choices=experiment_choices)
    _add_profile(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("train", help="train and evaluate one run of an experiment's protocol")
    _add_data_out(p)
    p.add_argument("--experiment", required=True, choices=experiment_choices)
    p.add_argument("--model", required=True, choices=MODEL_NAMES)
    _add_profile(p)
    p.add_argument("--chunk", type=int, default=0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--json", action="store_true", help="print the run record as JSON")
    _add_run_options(p, retry=False)

    p = sub.add_parser("run", help="run an experiment's grid (resumable, shardable)")
    _add_data_out(p)
    p.add_argument("--experiment", required=True, choices=experiment_choices)
    _add_profile(p)
    p.add_argument("--only", action="append", default=None, metavar="PATTERN",
                   help="run only run ids matching this glob or substring (repeatable)")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="run every N-th spec starting at I (machines sharing one --out)")
    p.add_argument("--models", default=None,
                   help="comma list of neural models (default: the experiment's own)")
    p.add_argument("--baselines", default=None,
                   help="comma list of count baselines to add (default: the experiment's own; "
                        "'' for none)")
    p.add_argument("--dry-run", action="store_true", help="list what is done and what would run")
    p.add_argument("--no-estimate", action="store_true",
                   help="with --dry-run: list the runs only; by default the plan follows, with "
                        "the time left estimated by timing a few training steps of each model "
                        "size on this device")
    _add_run_options(p)
    _add_backend_options(p)
    p.add_argument("--no-report", action="store_true", help="do not rebuild the report after")

    p = sub.add_parser("report", help="build tables, figures, report.md and report.pdf from "
                                      "the run records in a folder")
    p.add_argument("--out", required=True, help="output folder of the runs")

    p = sub.add_parser("validate", help="validation experiment: generated data with planted "
                                        "taste / long-range structure switched on and off")
    p.add_argument("--out", required=True, help="output folder (data, runs, report)")
    p.add_argument("--profile", default=DEFAULT_PROFILE,
                   help="size: smoke (CPU, minutes) or thesis (bigger, a GPU job)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a run setting (lr=0.01), a generator knob (synth.n_rows=5000)"
                        " or the experiment's own (validate.short_len=4) (repeatable)")
    p.add_argument("--models", default=None,
                   help="comma list of neural models (default: gru,user_gru,dnc)")
    p.add_argument("--baselines", default=None,
                   help="comma list of count baselines (default: pop,recent,markov; '' for none)")
    _add_run_options(p)
    _add_backend_options(p)

    p = sub.add_parser("demo", help="execute the notebook headlessly on generated data (smoke)")
    p.add_argument("--out", default="demo_out", help="output folder")
    p.add_argument("--profile", default=DEFAULT_PROFILE)
    p.add_argument("--timeout", type=int, default=3600, help="seconds per notebook cell")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads for training (default 1: the smoke models gain nothing from "
                        "more, and threads that wait on each other slow down badly on shared "
                        "cores; 0: torch's default, one per core)")
    return parser


def cmd_synth(args: argparse.Namespace) -> int:
    cfg = SynthConfig(seed=args.seed)
    if args.rows is not None:
        cfg = replace(cfg, n_rows=args.rows)
    if args.users is not None:
        cfg = replace(cfg, n_users=args.users)
    path = write_synthetic(Path(args.out), cfg)
    print(f"wrote {path}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    out = check_writable(args.out)
    specs = grid(args.experiment, args.profile, args.overrides, baselines=(), data=args.data)
    sources = Sources(out)
    first = sources(specs[0].data)
    ev = first.events(specs[0].config.data)  # one reading (item identity, columns) for the grid
    summary: dict = {"data": str(first.path), "fingerprint": first.ref.fingerprint,
                     "experiment": args.experiment, "rows_read": ev.report.rows_read,
                     "lines_skipped": ev.report.lines_skipped,
                     "skipped_examples": ev.report.examples, "users": int(len(ev.user_names)),
                     "items": int(len(ev.item_names)), "splits": []}
    for spec, split in split_of_each(specs, sources):
        summary["splits"].append({"group": spec.group, "axis": spec.axis, "value": spec.value,
                                  "chunk": spec.chunk, **split.summary()})
    if args.json:
        print(json.dumps(summary, default=str))
    else:
        print(f"{summary['data']}: {summary['rows_read']:,} rows read, "
              f"{summary['lines_skipped']:,} damaged lines skipped, {summary['users']:,} users, "
              f"{summary['items']:,} items")
        for s in summary["splits"]:
            w, d = s["windows"], s["dropped_unseen"]
            print(f"  {s['group']} {s['axis']}={s['value']} chunk {s['chunk']} "
                  f"(split {s.get('split', 'thesis')}): {s['n_items']:,} items; windows train "
                  f"{w['train']:,} val {w['val']:,} test {w['test']:,}; dropped unseen val "
                  f"{d['val']:,} test {d['test']:,}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    overrides = list(args.overrides) + ([f"seed={args.seed}"] if args.seed is not None else [])
    specs = grid(args.experiment, args.profile, overrides, baselines=(), models=(args.model,),
                 data=args.data, chunks=(args.chunk,))
    if not specs:
        raise ValueError(f"{args.experiment} has no chunk {args.chunk} in profile "
                         f"{args.profile!r}; choose a smaller --chunk or --set chunks=N")
    records = run_grid(specs[:1], args.out, _options(args), log=_log_stderr)
    if not records:  # another process holds the run (the line saying so is logged)
        return 1
    (record,) = records
    if args.json:
        print(json.dumps(record.to_json()))
    else:
        _print_record(record)
    return 0 if record.ok else 1


def _log_stderr(*parts) -> None:
    # with --json, stdout holds the record alone; progress lines go to stderr
    print(*parts, file=sys.stderr)


def _print_record(record) -> None:  # noqa: ANN001 - RunRecord
    print(f"{record.run_id}: {record.status}" + ("" if record.ok else f" ({record.reason})"))
    for k, v in sorted(record.metrics.items()):
        print(f"  {k:>12s} {v:.4f}")


def _add_run_options(p: argparse.ArgumentParser, retry: bool = True) -> None:
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    if retry:
        p.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--no-tensorboard", action="store_true",
                   help="write no TensorBoard event files (default: OUT/tensorboard/<run id>)")
    p.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                   help="keep checkpoints of running runs here instead of in OUT/runs (e.g. a "
                        "local disk on Colab; a run resumes only while DIR survives)")
    p.add_argument("--keep-model", action="store_true",
                   help="write each finished run's final weights to OUT/runs/<id>/model.pt")


def _add_backend_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local: the runs one after another in this process (default); ray: "
                        "every run a Ray task on a Ray cluster (pip install 'seqrec[ray]'; "
                        "docs/cluster.md)")
    p.add_argument("--address", default=None,
                   help="with --backend ray: the Ray cluster (auto, HOST:6379, ray://HOST:10001;"
                        " default: a local Ray instance with all this machine's cores and GPUs)")
    p.add_argument("--cpus-per-run", type=float, default=None, metavar="N",
                   help="with --backend ray: CPUs per run (default 1; a run trains with that "
                        "many threads)")
    p.add_argument("--gpus-per-run", type=float, default=None, metavar="N",
                   help="with --backend ray: GPUs per run; a fraction shares a GPU (0.25: four "
                        "runs per GPU; default 1 when the cluster has GPUs, else 0)")
    p.add_argument("--max-retries", type=int, default=None, metavar="N",
                   help="with --backend ray: how often a run whose worker died is started again,"
                        " resuming from its checkpoint (default 3)")


def _backend_options(args: argparse.Namespace) -> dict:
    given = {k: getattr(args, k) for k in ("address", "cpus_per_run", "gpus_per_run",
                                           "max_retries") if getattr(args, k) is not None}
    if given and args.backend != "ray":
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise ValueError(f"{flags} only apply with --backend ray")
    return given


def _options(args: argparse.Namespace) -> RunOptions:
    """The run options of a command's flags (`run_grid` resolves the device)."""
    return RunOptions(device=args.device, progress=not args.quiet,
                      retry_failed=getattr(args, "retry_failed", False),
                      tensorboard=not args.no_tensorboard, checkpoint_dir=args.checkpoint_dir,
                      keep_model=args.keep_model)


def _names(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    return tuple(b for b in text.replace(" ", "").split(",") if b)


def cmd_run(args: argparse.Namespace) -> int:
    backend_options = _backend_options(args)
    check_writable(args.out)
    options = _options(args)
    every = grid(args.experiment, args.profile, args.overrides, _names(args.baselines),
                 _names(args.models), args.data)
    if args.only and not select(every, args.only):
        ids = ", ".join(s.run_id for s in every[:3])
        raise ValueError(f"--only {' '.join(args.only)} matches none of the {len(every)} runs "
                         f"of {args.experiment} (e.g. {ids}); give a glob or substring of a "
                         f"run id (--dry-run lists them)")
    specs = select(every, args.only, args.shard)
    if args.dry_run:
        counts: dict[str, int] = {}
        states = plan(specs, args.out, options)
        for spec, state in states:
            counts[state] = counts.get(state, 0) + 1
            print(f"{state:8s} {spec.run_id}")
        print(", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "nothing selected")
        mixed = versions_of_finished(specs, [st for _, st in states], Path(args.out))
        if mixed:
            print(mixed)
        if not args.no_estimate and specs:
            here = resolved_options(options)
            plans = make_plan(specs, Path(args.out), here)
            for line in plan_lines(plans, args.profile, torch.device(here.device)):
                print(line)
        return 0
    records = run_grid(specs, args.out, options, backend=args.backend,
                       **backend_options)
    failed = failed_count(records, planned=len(specs))  # runs lost on Ray count
    print(f"{len(specs)} runs, {failed} failed; records under {Path(args.out) / 'runs'}")
    if not args.no_report:
        _report(args.out)
    if failed:
        print(f"error: {failed} of {len(specs)} runs failed (their reasons are in the report"
              f" and their records); after fixing the cause, run again with --retry-failed",
              file=sys.stderr)
        return 1
    return 0


def _report(out) -> Path | None:  # noqa: ANN001
    path = build_report(Path(out))
    print(f"report: {path}" if path else f"no run records under {Path(out) / 'runs'}; no "
          "report written")
    if path is not None and verdicts_path(path.parent).exists():
        print(verdicts_path(path.parent).read_text().rstrip())  # the claims' verdicts
    return path


def cmd_report(args: argparse.Namespace) -> int:
    if not Path(args.out).is_dir():
        raise ValueError(f"output folder {args.out!r} does not exist; run an experiment first")
    return 0 if _report(args.out) is not None else 1


def cmd_demo(args: argparse.Namespace) -> int:
    if args.threads < 0:
        raise ValueError(f"--threads must be >= 0 (0: torch's default), got {args.threads}")
    run_demo(Path(args.out), profile=args.profile, timeout=args.timeout,
             threads=args.threads or None)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    size, _ = validation_size(args.profile, args.overrides)  # bad settings stop here
    check_writable(args.out)
    specs = grid("validate", args.profile, args.overrides, models=_names(args.models),
                 baselines=_names(args.baselines))
    records = run_grid(specs, args.out, _options(args), backend=args.backend,
                       **_backend_options(args))
    path = write_validation_report(args.out, records, describe_size(size))
    for sentence in validation_sentences(validation_checks(records)):
        print(sentence)
    failed = failed_count(records)
    print(f"{len(records)} runs, {failed} failed; summary: {path}")
    return 1 if failed else 0


COMMANDS = {"synth": cmd_synth, "prepare": cmd_prepare, "train": cmd_train, "run": cmd_run,
            "report": cmd_report, "demo": cmd_demo, "validate": cmd_validate}


# Exit statuses besides 0 (done), 1 (runs failed) and 2 (bad input or a file problem): the
# shell's own for a process ended by Ctrl-C (128 + SIGINT) and by a closed pipe (128 + SIGPIPE).
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
RESUME = ("finished runs keep their records and an interrupted run resumes from its last "
          "checkpoint when you run the same command again")


def main(argv: list[str] | None = None) -> int:
    """Run one command; whatever stops it ends in one line on stderr, never a traceback:
    bad input and file problems (exit 2), Ctrl-C (130), memory running out (2), a closed
    output pipe (`| head`: 141, silently). Errors that are bugs still raise."""
    args = build_parser().parse_args(argv)
    # Warnings (a cache rebuilt, damaged lines skipped) as one `warning: ...` line each, like
    # the errors, instead of Python's two lines with a source line; restored on return.
    default_format = warnings.formatwarning
    warnings.formatwarning = _format_warning
    try:
        _check_paths(args)
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, not in Python's flush at exit
        return code
    except KeyboardInterrupt:
        print(f"\ninterrupted; {RESUME}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as e:
        print(f"error: {os_error_sentence(e)}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as e:
        if not is_out_of_memory(e):
            raise
        print(f"error: out of memory ({' '.join(str(e).split())[:120] or type(e).__name__});"
              f" lower {MEMORY_SETTINGS} with --set", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = default_format


def _format_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    return f"warning: {message}\n"


def _check_paths(args: argparse.Namespace) -> None:
    """Refuse an empty --out or --checkpoint-dir (Path('') is the current folder) and a
    `synth --out` that is a folder, before any work."""
    for flag in ("out", "checkpoint_dir"):
        value = getattr(args, flag, None)
        if value is not None and not str(value).strip():
            raise ValueError(f"--{flag.replace('_', '-')} is empty; give a folder "
                             f"(an empty path would write into the current folder)")
    if args.command == "synth" and Path(args.out).is_dir():
        raise ValueError(f"--out {args.out} is a folder; give the path of the log file to "
                         f"write, e.g. {Path(args.out) / 'log.tsv'}")


def os_error_sentence(e: OSError) -> str:
    """One sentence for an OSError, naming the path and what to do.

    Errors seqrec raises itself (a missing data file) carry their sentence already; raw ones
    from the system carry an errno and often a file name, turned into advice here.
    """
    if e.errno is None:
        return str(e)
    name = e.filename if e.filename is not None else None
    where = f" while writing {name}" if name else ""
    if e.errno == errno.ENOSPC:
        return (f"no space left on the device{where}; free some space or choose another --out "
                f"(or --checkpoint-dir), then run again: {RESUME}")
    if e.errno == errno.EFBIG:
        return (f"a file grew past the size limit of this process{where} (ulimit -f); raise it "
                f"(ulimit -f unlimited), then run again: {RESUME}")
    if e.errno == errno.EDQUOT:
        return f"the disk quota is exhausted{where}; free some space, then run again: {RESUME}"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"{name or 'a file'} cannot be written ({e.strerror}); make the folder "
                f"writable or choose another --out (or --checkpoint-dir)")
    if e.errno in (errno.ENOTDIR, errno.EEXIST) and name is not None:
        blocker = next((p for p in (Path(name), *Path(name).parents)
                        if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            return (f"{blocker} is a file where seqrec needs a folder (for {name}); move it "
                    f"away or choose another --out (or --checkpoint-dir)")
    if e.errno == errno.EISDIR and name is not None:
        return f"{name} is a folder where seqrec needs a file; move it away"
    return f"{name + ': ' if name else ''}{e.strerror or e}"


def _silence_stdout() -> None:
    """After a closed pipe: point stdout at /dev/null, so that Python's flush at exit does not
    print a second BrokenPipeError (the recipe of Python's `signal` documentation)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real stdout (tests capture it)
        pass
