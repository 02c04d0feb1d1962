"""``edgefleet bench MODEL`` and ``edgefleet bench compare``."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from edgefleet.cli.exit_codes import EXIT_INTERRUPTED

if TYPE_CHECKING:  # typer bundles its own click; this is the Context type its groups take
    from typer._click.core import Context

__all__ = ["bench_app"]


class _DefaultRunGroup(TyperGroup):
    """``edgefleet bench MODEL ...`` means ``edgefleet bench run MODEL ...``."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


bench_app = typer.Typer(
    cls=_DefaultRunGroup,
    help=(
        "Measure a model on this device and against the cloud, then decide.\n\n"
        "edgefleet bench MODEL [options] measures (see 'edgefleet bench run --help');\n"
        "edgefleet bench compare A.json B.json ... ranks reports."
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)


class _Progress:
    """One status line per target on stderr: rewritten in place on a terminal."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(
        self, phase: str, elapsed: float, planned: float, queries: int, p99: float | None
    ) -> None:
        now = time.monotonic()
        if not self.tty and now - self.last < 5 and elapsed < planned:
            return
        self.last = now
        width = 24
        filled = min(width, int(width * elapsed / planned)) if planned > 0 else width
        bar = "#" * filled + "." * (width - filled)
        tail = f"  p99 {p99:.3f} ms" if p99 is not None else ""
        line = (
            f"  [{bar}] {self.name} {phase} {elapsed:5.1f}/{planned:g} s  {queries} queries{tail}"
        )
        if self.tty:
            sys.stderr.write("\r" + line.ljust(100) + ("\n" if elapsed >= planned else ""))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _slo(text: str | None) -> dict[str, float]:
    from edgefleet.bench.compare import parse_slo

    return parse_slo(text) if text else {}


def _summary(report: dict[str, Any]) -> list[str]:
    lines = [
        f"{'target':<10} {'scenario':<14} {'queries':>8} {'p50 ms':>9} {'p90 ms':>9} "
        f"{'p99 ms':>9} {'p99.9 ms':>9} {'qps':>9} {'mJ/inf':>8} {'stable':>6}"
    ]
    for t in report["targets"]:
        lat = t["latency_ms"]
        energy = t.get("energy") or {}
        mj = energy.get("mj_per_inference")
        mj_text = "-" if mj is None else f"{mj:.3f}" + ("*" if energy.get("estimated") else "")
        cells = [lat.get(k) for k in ("p50", "p90", "p99", "p999")]
        lines.append(
            f"{t['name']:<10} {t['scenario']:<14} {t['queries']:>8} "
            + " ".join("        -" if v is None else f"{v:9.3f}" for v in cells)
            + f" {t['throughput_qps']:9.1f} {mj_text:>8} {'yes' if t['stable'] else 'no':>6}"
        )
        for key, label in (
            ("accuracy", "accuracy"),
            ("server", "server"),
            ("sustained", "sustained"),
        ):
            value = t.get(key)
            if value:
                lines.append(f"{'':<10} {label}: {_short(value)}")
        if t["errors"]:
            lines.append(f"{'':<10} {t['errors']} failed queries; first: {t['first_error']}")
    if any((t.get("energy") or {}).get("estimated") for t in report["targets"]):
        lines.append("* energy is an estimate (no meter found): process CPU time x watts per core")
    return lines


def _load_options(
    threads: int | None, spin_wait: bool | None, providers: str | None
) -> dict[str, Any]:
    """Runtime options for the measured model; only those given, the rest keep their default."""
    from edgefleet.runtime.options import parse_providers

    options: dict[str, Any] = {}
    if threads is not None:
        options["intra_op_threads"] = threads
    if spin_wait is not None:
        options["spin_wait"] = spin_wait
    if providers:
        options["providers"] = parse_providers(providers)
    return options


def _short(value: dict[str, Any]) -> str:
    keep = (
        "top1",
        "samples",
        "target_qps",
        "achieved_qps",
        "max_qps_at_slo",
        "verdict",
        "throughput_drop",
        "evidence",
    )
    return ", ".join(f"{k}={value[k]}" for k in keep if k in value and value[k] not in (None, []))


@bench_app.command("run")
def run(
    model: Annotated[Path, typer.Argument(help="ONNX model or pipeline definition to measure.")],
    scenario: Annotated[
        str,
        typer.Option(help="single-stream | multi-stream | server | offline (MLPerf semantics)."),
    ] = "single-stream",
    duration: Annotated[str, typer.Option(help="Minimum measured time: 10, 30s, 5m.")] = "10s",
    min_queries: Annotated[int, typer.Option(help="Minimum measured queries.")] = 100,
    warmup: Annotated[str, typer.Option(help="Warm-up excluded from results.")] = "1s",
    window: Annotated[
        str | None,
        typer.Option(help="Window for the timeline and stability [1s; sustained: 60s]."),
    ] = None,
    batch: Annotated[int, typer.Option(help="Samples per request (dynamic batch dim).")] = 1,
    concurrency: Annotated[
        int | None, typer.Option(help="Load threads [offline: cores; server: 16].")
    ] = None,
    qps: Annotated[float | None, typer.Option(help="Server scenario: Poisson rate.")] = None,
    find_max_qps: Annotated[
        bool, typer.Option(help="Server scenario: search the highest rate meeting --slo.")
    ] = False,
    slo: Annotated[str | None, typer.Option(help="Latency objective, e.g. p99=50ms.")] = None,
    samples_per_query: Annotated[int, typer.Option(help="Multi-stream samples per query.")] = 8,
    edge: Annotated[bool, typer.Option(help="Measure the local runtime in-process.")] = True,
    loopback: Annotated[
        bool, typer.Option(help="Also measure edgefleet serve over loopback.")
    ] = False,
    cloud: Annotated[
        str | None, typer.Option(help="Remote OIP endpoint (Triton, KServe, MLServer, edgefleet).")
    ] = None,
    cloud_model: Annotated[
        str | None, typer.Option(help="Model name at --cloud [default: the model's name].")
    ] = None,
    emulate: Annotated[
        str | None,
        typer.Option(
            help="Put an emulated link before --cloud: rtt=45ms,jitter=10ms,bw=20mbit,loss=0.5%."
        ),
    ] = None,
    cloud_emulate: Annotated[
        str | None,
        typer.Option(help="Serve this model locally behind an emulated link, measured as 'cloud'."),
    ] = None,
    tensor_format: Annotated[
        str, typer.Option("--format", help="Tensor encoding for OIP targets: binary | json.")
    ] = "binary",
    labels: Annotated[
        Path | None, typer.Option(help=".npz with x (or one array per input) and integer y.")
    ] = None,
    energy: Annotated[
        str, typer.Option(help="auto | rapl | nvml | jetson | estimate | cmd:COMMAND | csv:FILE.")
    ] = "auto",
    watts: Annotated[
        float | None, typer.Option(help="Watts per busy core for the estimate.")
    ] = None,
    idle: Annotated[str, typer.Option(help="Idle baseline measured before the runs.")] = "2s",
    sustained: Annotated[
        str | None, typer.Option(help="Sustained load for this long, e.g. 45m (windows: --window).")
    ] = None,
    label: Annotated[str | None, typer.Option(help="Device label [default: hostname].")] = None,
    out: Annotated[Path, typer.Option(help="Directory for report.json and report.html.")] = Path(
        "reports/bench"
    ),
    seed: Annotated[int, typer.Option(help="Seed for inputs, arrivals and emulation.")] = 0,
    threads: Annotated[
        int | None, typer.Option(help="ONNX Runtime threads per operator [0: one per core].")
    ] = None,
    spin_wait: Annotated[
        bool | None,
        typer.Option(
            "--spin-wait/--no-spin-wait",
            help="Let idle ONNX Runtime threads spin [runtime default: yes]; spinning costs "
            "energy at low rates.",
        ),
    ] = None,
    providers: Annotated[
        str | None, typer.Option(help="Execution providers, comma-separated [default: auto].")
    ] = None,
) -> None:
    """Measure MODEL: latency percentiles, throughput, energy, on this device and the cloud."""
    from edgefleet.bench.netem_spec import parse_emulation
    from edgefleet.bench.report import write_report
    from edgefleet.bench.runner import RunPlan
    from edgefleet.bench.scenarios import SCENARIOS
    from edgefleet.bench.session import BenchConfig, run_bench
    from edgefleet.bench.settings import BenchSettings
    from edgefleet.bench.units import parse_duration
    from edgefleet.errors import ConfigurationError, TargetError

    if scenario not in SCENARIOS:
        raise ConfigurationError(
            f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}"
        )
    if tensor_format not in ("binary", "json"):
        raise ConfigurationError(f"--format must be binary or json, got {tensor_format!r}")
    if emulate and not cloud:
        raise ConfigurationError("--emulate needs --cloud URL (or use --cloud-emulate SPEC)")
    if min_queries < 1 or batch < 1:
        raise ConfigurationError("--min-queries and --batch must be >= 1")
    window_s = parse_duration(window, "--window") if window else (60.0 if sustained else 1.0)
    for option, value in (("--qps", qps), ("--watts", watts)):
        if value is not None and not 0 < value < float("inf"):
            raise ConfigurationError(f"{option} must be a positive number, got {value}")
    plan = RunPlan(
        duration_s=parse_duration(duration, "--duration"),
        min_queries=min_queries,
        warmup_s=parse_duration(warmup, "--warmup"),
        window_s=window_s,
    )
    if plan.duration_s <= 0 or plan.window_s <= 0:
        raise ConfigurationError("--duration and --window must be longer than 0")
    config = BenchConfig(
        model_path=model,
        scenario=scenario,
        plan=plan,
        batch=batch,
        concurrency=concurrency,
        target_qps=qps,
        find_max_qps=find_max_qps,
        slo_ms=_slo(slo),
        samples_per_query=samples_per_query,
        edge=edge,
        loopback=loopback,
        cloud_url=cloud,
        cloud_model=cloud_model,
        emulate=parse_emulation(emulate) if emulate else None,
        cloud_emulate=parse_emulation(cloud_emulate) if cloud_emulate else None,
        binary=tensor_format == "binary",
        labels=labels,
        energy=energy,
        watts_per_core=watts,
        idle_s=parse_duration(idle, "--idle"),
        sysfs_root=BenchSettings().sysfs_root,
        sustained_s=parse_duration(sustained, "--sustained") if sustained else None,
        label=label or "",
        seed=seed,
        load_options=_load_options(threads, spin_wait, providers),
    )
    if not model.exists():
        raise ConfigurationError(f"model {model} does not exist")
    try:  # fail now, not after a long run, if the report cannot be written
        out.mkdir(parents=True, exist_ok=True)
        (out / ".write-test").touch()
        (out / ".write-test").unlink()
    except OSError as exc:
        raise ConfigurationError(
            f"cannot write the report to {out}: {exc.strerror or exc}"
        ) from None
    say = lambda line: typer.echo(line, err=True)  # noqa: E731
    report = run_bench(config, say=say, progress_for=_Progress)
    json_path, html_path = write_report(report, out)
    for line in _summary(report):
        typer.echo(line)
    state = "PARTIAL report (interrupted)" if report["partial"] else "report"
    typer.echo(f"{state}: {json_path}  {html_path}")
    if report["partial"]:
        raise typer.Exit(EXIT_INTERRUPTED)
    failed = [t["name"] for t in report["targets"] if t["queries"] and t["errors"] == t["queries"]]
    if failed:
        first = next(t["first_error"] for t in report["targets"] if t["name"] == failed[0])
        raise TargetError(f"every query to {', '.join(failed)} failed; the first: {first}")


@bench_app.command("compare")
def compare(
    reports: Annotated[list[Path], typer.Argument(help="report.json files, one per candidate.")],
    slo: Annotated[str, typer.Option(help="Latency objective, e.g. p99=50ms.")] = "p99=50ms",
    battery_wh: Annotated[
        float | None, typer.Option(help="Battery capacity in Wh, for battery life.")
    ] = None,
    price: Annotated[
        str | None, typer.Option(help="Prices per candidate label: A=499,B=899.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the decision as HTML here.")] = None,
) -> None:
    """Rank candidates on tail latency, throughput at the SLO, energy, accuracy, sustained load."""
    from edgefleet.bench import compare as decide

    loaded = decide.load_reports(reports)
    comparison = decide.compare(
        loaded,
        decide.parse_slo(slo),
        battery_wh=battery_wh,
        prices=decide.parse_prices(price) if price else None,
    )
    typer.echo(decide.format_table(comparison))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(decide.render_compare_html(comparison), encoding="utf-8")
        typer.echo(f"html: {out}")
