"""The ``pixelgate`` command line.

Every command prints progress on stderr and ends with a summary table on stdout. A bad path or
argument ends with one line, ``pixelgate: error: ...``, and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from consumers import tools
from consumers.embedded import run_embedded
from consumers.errors import ConfigError
from consumers.logging import configure_logging, get_logger
from consumers.report import write_reports
from consumers.settings import Settings, load_settings
from consumers.stages import STAGE_NAMES
from consumers.uploads import InputFile, collect_inputs
from schemas.events import EDIT_STAGES, Operations

__all__ = ["build_parser", "main"]

_out = Console()
_err = Console(stderr=True)


class UsageError(Exception):
    """A bad path or argument: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (``pixelgate: error: ...``), not usage + error."""

    def error(self, message: str) -> NoReturn:
        _err.print(f"pixelgate: error: {self.prog}: {message} (see --help)", markup=False,
                   highlight=False, soft_wrap=True)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (its surface is checked by tests against the CLI contract)."""
    parser = _Parser(prog="pixelgate", description="Clean marketplace product photos.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="whole pipeline, embedded; OUT/report.jsonl, report.html")
    run.add_argument("input", type=Path, metavar="IN", help="a file or a folder")
    run.add_argument("--out", type=Path, required=True, metavar="OUT")
    run.add_argument("--config", type=Path, metavar="FILE", help="YAML settings overlay")
    run.add_argument("--remove-text", choices=("auto", "on", "off"), default="auto")
    run.add_argument("--upscale-to", type=int, metavar="PX", help="target long side in pixels")

    pre = sub.add_parser("preflight", help="normalized images + report.jsonl")
    pre.add_argument("input", type=Path, metavar="IN")
    pre.add_argument("--out", type=Path, required=True, metavar="OUT")
    pre.add_argument("--config", type=Path, metavar="FILE")

    for name, text in (
        ("detect-text", "OUT/<stem>.png masks (255 = text, 0 = not)"),
        ("remove-text", "OUT/<stem>.png with detected text removed"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("input", type=Path, metavar="IN")
        cmd.add_argument("--out", type=Path, required=True, metavar="OUT")

    inp = sub.add_parser("inpaint", help="fill masked pixels: M is a mask or a folder of masks")
    inp.add_argument("input", type=Path, metavar="IN")
    inp.add_argument("--mask", type=Path, required=True, metavar="M")
    inp.add_argument("--out", type=Path, required=True, metavar="OUT")

    up = sub.add_parser("upscale", help="OUT/<stem>.png upscaled x2 or x4")
    up.add_argument("input", type=Path, metavar="IN")
    up.add_argument("--scale", type=int, choices=(2, 4), required=True)
    up.add_argument("--out", type=Path, required=True, metavar="OUT")

    worker = sub.add_parser("worker", help="one Kafka stage worker (settings from env / file)")
    worker.add_argument("stage", choices=(*STAGE_NAMES, "all"), metavar="STAGE",
                        help=f"one of {', '.join(STAGE_NAMES)}, or all")
    worker.add_argument("--config", type=Path, metavar="FILE")

    submit = sub.add_parser("submit", help="upload files to S3 and publish `uploaded` events")
    submit.add_argument("input", type=Path, metavar="IN")
    submit.add_argument("--config", type=Path, metavar="FILE")
    submit.add_argument("--remove-text", choices=("auto", "on", "off"), default="auto")
    submit.add_argument("--upscale-to", type=int, metavar="PX")

    breaker = sub.add_parser(
        "breaker", help="circuit breakers: show states and windows, or command every replica"
    )
    breaker.add_argument("action", choices=("status", "force-open", "disable", "reset"))
    breaker.add_argument("--stage", choices=EDIT_STAGES,
                         help="the stage (required except for status)")
    breaker.add_argument("--vendor", metavar="V", help="a vendor's breaker (per-vendor policy)")
    breaker.add_argument("--reason", default="", metavar="TEXT", help="why, for the audit trail")
    breaker.add_argument("--config", type=Path, metavar="FILE")

    dev = sub.add_parser("dev", help="the local broker (Tansu) + object store (SeaweedFS)")
    dev.add_argument("action", choices=("up", "down", "status"))

    sample = sub.add_parser("sample", help="generate a messy vendor upload (with ground truth)")
    sample.add_argument("out", type=Path, metavar="OUT")
    sample.add_argument("--count", type=int, default=30)
    sample.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(getattr(args, "config", None))
        # Laptop commands show a progress bar and a summary, so per-item lines would only be
        # noise there: they log warnings and errors. Services log at PIXELGATE_LOG_LEVEL.
        service = args.command in {"worker", "submit", "dev"}
        configure_logging(settings.log_level if service else "WARNING")
        get_logger("cli").debug("settings", settings=settings.as_dict())
        return _COMMANDS[args.command](args, settings)
    except (UsageError, ConfigError, FileNotFoundError, NotADirectoryError) as exc:
        _err.print(f"pixelgate: error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        _err.print("pixelgate: interrupted", markup=False)
        return 130


def _progress(total: int, what: str) -> Progress:
    progress = Progress(
        TextColumn(f"[bold]{what}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_err,
        transient=False,
    )
    progress.add_task(what, total=total)
    return progress


def _ticker(progress: Progress) -> Callable[[], None]:
    task = progress.task_ids[0]
    return lambda: progress.advance(task)


def _inputs(path: Path, out: Path | None = None) -> list[InputFile]:
    files = collect_inputs(path, exclude=out)
    if not files:
        raise UsageError(f"no input files under {path}")
    return files


def _out_dir(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out must be a folder, but {path} is a file")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    files = _inputs(args.input, args.out)
    out = _out_dir(args.out)
    ops = _operations(args)
    with _progress(len(files), "pipeline") as progress:
        tick = _ticker(progress)
        run = asyncio.run(
            run_embedded(files, out, settings, operations=ops, on_terminal=lambda _n, _s: tick())
        )
    jsonl, html = write_reports(out, run.rows, elapsed_s=run.elapsed_s,
                                transitions=run.transitions)
    statuses = Counter(str(r.record["status"]) for r in run.rows)
    table = Table(title=f"pixelgate run: {len(run.rows)} files in {run.elapsed_s:.1f} s")
    table.add_column("status")
    table.add_column("files", justify="right")
    for status in ("done", "review", "rejected", "failed"):
        table.add_row(status, str(statuses.get(status, 0)))
    _out.print(table)
    reasons = Counter(
        str(reason["code"]) for r in run.rows for reason in r.record["reasons"]
    )
    if reasons:
        why = Table(title="reasons")
        why.add_column("code")
        why.add_column("files", justify="right")
        for code, count in reasons.most_common():
            why.add_row(code, str(count))
        _out.print(why)
    _out.print(f"report: {jsonl}\nhtml:   {html}", highlight=False)
    return 0


def _print_summary(title: str, summary: tools.ToolSummary, out: Path) -> int:
    table = Table(title=title)
    table.add_column("input", overflow="fold")
    table.add_column("status")
    table.add_column("output / reason", overflow="fold")
    for row in summary.details:
        reasons = row.get("reasons") or []
        detail = row["output"] or "; ".join(r["code"] for r in reasons)
        table.add_row(row["input"], row["status"], detail)
    _out.print(table)
    _out.print(f"{summary.done} done, {summary.rejected} rejected -> {out}", highlight=False)
    return 0


def _tool(name: str, fn: Callable[..., tools.ToolSummary], *extra: Any) -> Callable[
    [argparse.Namespace, Settings], int
]:
    def command(args: argparse.Namespace, settings: Settings) -> int:
        import torch  # noqa: PLC0415 - the model tools need it anyway; keeps `dev` light

        torch.set_num_threads(settings.torch_threads)
        files = _inputs(args.input, args.out)
        out = _out_dir(args.out)
        with _progress(len(files), name) as progress:
            summary = fn(files, *[getattr(args, e) for e in extra], out, _ticker(progress),
                         settings=settings)
        return _print_summary(f"pixelgate {name}", summary, out)

    return command


def _cmd_preflight(args: argparse.Namespace, settings: Settings) -> int:
    from processors.preflight import PreflightPolicy  # noqa: PLC0415 - keeps start-up light

    files = _inputs(args.input, args.out)
    out = _out_dir(args.out)
    policy = PreflightPolicy().with_overrides(settings.preflight)
    with _progress(len(files), "preflight") as progress:
        summary = tools.preflight(files, out, _ticker(progress), policy)
    return _print_summary("pixelgate preflight", summary, out)


def _cmd_inpaint(args: argparse.Namespace, settings: Settings) -> int:
    if not args.mask.exists():
        raise UsageError(f"mask not found: {args.mask}")
    return _tool("inpaint", tools.inpaint, "mask")(args, settings)


def _cmd_sample(args: argparse.Namespace, settings: Settings) -> int:  # noqa: ARG001
    from consumers.dev.sample import generate_sample  # noqa: PLC0415

    if args.count < 1:
        raise UsageError("--count must be at least 1")
    with _progress(args.count, "sample") as progress:
        tick = _ticker(progress)
        items = generate_sample(args.out, args.count, seed=args.seed, on_item=lambda _i: tick())
    kinds = Counter(item.kind for item in items)
    table = Table(title=f"sample: {len(items)} files in {args.out / 'upload'}")
    table.add_column("kind")
    table.add_column("files", justify="right")
    for kind, count in sorted(kinds.items()):
        table.add_row(kind, str(count))
    _out.print(table)
    return 0


def _operations(args: argparse.Namespace) -> Operations:
    if args.upscale_to is not None and not 64 <= args.upscale_to <= 16384:
        raise UsageError("--upscale-to must be between 64 and 16384 pixels")
    return Operations(remove_text=args.remove_text, upscale_to=args.upscale_to)


def _cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.worker import run_worker  # noqa: PLC0415 - Kafka client only when needed

    asyncio.run(run_worker(settings, [args.stage]))
    return 0


def _cmd_submit(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.worker import submit_files  # noqa: PLC0415 - Kafka client only when needed

    files = _inputs(args.input)
    ops = _operations(args)
    submitted = asyncio.run(submit_files(files, settings, ops))
    table = Table(title=f"submitted {len(submitted)} files to {settings.topic_prefix}uploaded")
    table.add_column("input", overflow="fold")
    table.add_column("image id")
    for name, image_id in submitted:
        table.add_row(name, image_id)
    _out.print(table)
    return 0


def _cmd_breaker(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.worker import read_breaker_states  # noqa: PLC0415 - Kafka client only when needed

    if args.action != "status":
        _send_breaker_command(args, settings)
    feed = asyncio.run(read_breaker_states(settings))
    table = Table(title=f"circuit breakers ({settings.topic_prefix}metrics)")
    for column in ("stage", "vendor", "state", "calls", "failed", "fail%", "slow%"):
        table.add_column(column, no_wrap=True)
    last = {t.scope: t for t in feed.transitions}
    reasons = []
    for status in feed.board.snapshots():
        (stage, vendor), state, snap = status.scope, status.state, status.snapshot
        if (args.stage is not None and stage != args.stage) or (
            args.vendor is not None and vendor != args.vendor
        ):
            continue
        change = last.get(status.scope)
        table.add_row(
            stage, vendor or "all", str(state), str(snap.calls), str(snap.failures),
            _rate(snap.failure_rate), _rate(snap.slow_call_rate),
        )
        if change is not None:
            at = datetime.fromtimestamp(change.at, UTC).isoformat(timespec="seconds")
            reasons.append(f"{stage}/{vendor or 'all'}: {change.from_state} → {change.to_state}"
                           f" at {at}: {change.reason}")
    _out.print(table)
    for line in reasons:
        _out.print(line, markup=False, highlight=False, soft_wrap=True)
    return 0


def _send_breaker_command(args: argparse.Namespace, settings: Settings) -> None:
    """Check the ``breaker`` command's arguments and publish it for every replica."""
    from consumers.worker import send_breaker_command  # noqa: PLC0415 - Kafka client only when needed

    if args.stage is None:
        raise UsageError(f"breaker {args.action} needs --stage ({' or '.join(EDIT_STAGES)})")
    if args.stage not in settings.breakers:
        raise UsageError(f"stage {args.stage} has no circuit breaker in these settings")
    if args.vendor is not None and not settings.breakers[args.stage].per_vendor:
        raise UsageError(
            f"the {args.stage} breaker is not per vendor (breakers.{args.stage}.per_vendor "
            "is false); leave out --vendor"
        )
    action = args.action.replace("-", "_")
    asyncio.run(send_breaker_command(settings, args.stage, action, vendor_id=args.vendor,
                                     reason=args.reason))
    _err.print(f"sent {action} for {args.stage}/{args.vendor or 'all vendors'}; every "
               "replica applies it when it reads the breaker topic", highlight=False)


def _rate(value: float) -> str:
    return "-" if value < 0 else f"{value:.1f}"


def _cmd_dev(args: argparse.Namespace, settings: Settings) -> int:  # noqa: ARG001
    from consumers.dev.devstack import DevStack, DevStackConfig  # noqa: PLC0415

    stack = DevStack(DevStackConfig.from_env())
    if args.action == "up":
        stack.up()
        _err.print("local broker and object store are up; paste these lines into your shell:",
                   highlight=False)
        for line in stack.export_lines():
            _out.print(line, markup=False, highlight=False, soft_wrap=True)
        return 0
    if args.action == "down":
        stack.down()
        _out.print(f"local broker and object store under {stack.config.data_dir} are down",
                   highlight=False)
        return 0
    table = Table(title="pixelgate dev status")
    for column in ("service", "pid", "running", "ready", "address", "log"):
        table.add_column(column, overflow="fold")
    statuses = stack.status()
    for st in statuses:
        table.add_row(st.name, str(st.pid or "-"), "yes" if st.running else "no",
                      "yes" if st.ready else "no", st.address, str(st.log))
    _out.print(table)
    return 0 if all(st.ready for st in statuses) else 1


_COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "worker": _cmd_worker,
    "submit": _cmd_submit,
    "dev": _cmd_dev,
    "breaker": _cmd_breaker,
    "run": _cmd_run,
    "preflight": _cmd_preflight,
    "detect-text": _tool("detect-text", tools.detect_text),
    "remove-text": _tool("remove-text", tools.remove_text),
    "inpaint": _cmd_inpaint,
    "upscale": _tool("upscale", tools.upscale, "scale"),
    "sample": _cmd_sample,
}


if __name__ == "__main__":
    sys.exit(main())
