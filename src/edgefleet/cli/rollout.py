"""``edgefleet rollout`` and ``edgefleet policy``: staged rollouts, A/B tests, update windows."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from edgefleet.cli.fleet import (
    DEFAULT_SERVER,
    CaOpt,
    JsonOpt,
    ServerOpt,
    TokenOpt,
    _client,
    _print_json,
    _table,
)
from edgefleet.errors import ConfigurationError

__all__ = ["parse_target", "policy_app", "print_status", "rollout_app", "stage_label"]

rollout_app = typer.Typer(
    help="Staged rollouts and A/B experiments gated on model quality, with automatic rollback.",
    rich_markup_mode=None,
)
policy_app = typer.Typer(
    help="Update policies: maintenance windows and daily download budgets per selector.",
    rich_markup_mode=None,
)


def parse_target(target: str, what: str = "rollout target") -> tuple[str, str]:
    """``NAME@VERSION`` -> ``(NAME, VERSION)``; a clear error naming ``what`` otherwise."""
    name, sep, version = target.partition("@")
    if not sep or not name or not version:
        raise ConfigurationError(f"{what} {target!r} must be NAME@VERSION")
    return name, version


def _read_plan(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigurationError(f"plan file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    import yaml  # only here: `serve` and `agent` start without it

    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"plan file {path} is not valid JSON/YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"plan file {path} must hold a mapping (stages, gates, ...)")
    return data


@rollout_app.command("start")
def start(
    target: Annotated[str, typer.Argument(help="NAME@VERSION: the candidate.")],
    to: Annotated[str, typer.Option("--to", help="Label selector, e.g. site=plant-3.")] = "",
    plan: Annotated[
        str | None,
        typer.Option(
            help="Stages: [kind:]share[:bake][:sample], comma-separated; kinds shadow, canary, "
            "staged. e.g. shadow:10%:1h,canary:5%:2h,25%:2h,100%"
        ),
    ] = None,
    gate: Annotated[
        list[str] | None,
        typer.Option(
            help="A gate, repeatable: METRIC<=X or METRIC>=X, then options, e.g. "
            "'p99_ratio<=1.5,min_devices=3,min_inferences=200,interval=30s,failures=2'. "
            "Metrics: p99_ratio, error_rate_delta, accuracy_delta, disagreement, rollbacks. "
            "Without any: the default gates."
        ),
    ] = None,
    progress_deadline: Annotated[
        str | None, typer.Option(help="Pause when gates stay inconclusive this long [1h].")
    ] = None,
    plan_file: Annotated[
        Path | None, typer.Option(help="A YAML or JSON plan (stages and gates, or experiment).")
    ] = None,
    ab: Annotated[
        str | None, typer.Option(help="A/B experiment instead: share of devices on B, e.g. 50%.")
    ] = None,
    duration: Annotated[str | None, typer.Option(help="A/B: how long it runs, e.g. 2h.")] = None,
    auto_promote: Annotated[
        bool, typer.Option(help="A/B: act on the recommendation at the end.")
    ] = False,
    allow_small_cohorts: Annotated[
        bool,
        typer.Option(
            help="Start even when a stage's cohort, on the devices selected now, is smaller "
            "than a gate's min_devices (that stage then waits for more devices)."
        ),
    ] = False,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = "",
    ca_file: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start rolling NAME@VERSION out to the devices matching --to, stage by stage."""
    name, version = parse_target(target)
    body: dict[str, Any] = {"model": name, "version": version, "selector": to}
    if plan_file is not None:
        body["plan"] = _read_plan(plan_file)
    if plan is not None:
        body["stages"] = plan
    if gate:
        body["gates"] = list(gate)
    if progress_deadline is not None:
        body["progress_deadline"] = progress_deadline
    if ab is not None:
        body.update(ab_share=ab, ab_duration=duration, auto_promote=auto_promote)
    if allow_small_cohorts:
        body["allow_small_cohorts"] = True
    with _client(server, token, ca_file) as client:
        result = client.request("POST", "/rollouts", json=body)
    if as_json:
        _print_json(result)
        return
    typer.echo(
        f"started {result['rollout_id']}: {name} {result['previous']['version']} -> "
        f"{version} on {result['devices']['targeted']} device(s)"
    )
    for event in result["timeline"]:
        if event["kind"] == "started" and event.get("warning"):
            typer.echo(f"warning: {event['warning']}", err=True)
    print_status(result)


@rollout_app.command("status")
def status(
    rollout_id: Annotated[str, typer.Argument(help="The rollout id (ro-... or ab-...).")],
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = "",
    ca_file: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stage, every gate's value against its threshold, devices per state, timeline."""
    with _client(server, token, ca_file) as client:
        result = client.request("GET", f"/rollouts/{rollout_id}")
    if as_json:
        _print_json(result)
    else:
        print_status(result)


@rollout_app.command("list")
def list_rollouts(
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = "",
    ca_file: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every rollout and experiment, newest first."""
    with _client(server, token, ca_file) as client:
        rows = client.request("GET", "/rollouts")
    if as_json:
        _print_json(rows)
        return
    _table(
        [
            [
                r["rollout_id"],
                r["kind"],
                r["model"],
                f"{r['previous']} -> {r['candidate']}",
                r["state"],
                stage_label(r["stage"], r.get("stages", 0)),
                r["reason"][:60],
            ]
            for r in rows
        ],
        ["ID", "KIND", "MODEL", "VERSIONS", "STATE", "STAGE", "REASON"],
    )


def _action(action: str, help_text: str) -> None:
    def command(
        rollout_id: Annotated[str, typer.Argument(help="The rollout id.")],
        reason: Annotated[str, typer.Option(help="Why (kept in the timeline).")] = "",
        server: ServerOpt = DEFAULT_SERVER,
        token: TokenOpt = "",
        ca_file: CaOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        with _client(server, token, ca_file) as client:
            result = client.request(
                "POST", f"/rollouts/{rollout_id}/{action}", json={"reason": reason}
            )
        if as_json:
            _print_json(result)
        else:
            typer.echo(f"{rollout_id}: {result['state']}")

    command.__doc__ = help_text
    rollout_app.command(action)(command)


_action("pause", "Stop advancing (gates keep being shown; devices stay as they are).")
_action("resume", "Resume a paused rollout (the progress deadline starts again).")
_action("promote", "Put the candidate on every targeted device now.")
_action("abort", "Stop and return every device on the candidate to the previous version.")


def _when(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%H:%M:%S")


def stage_label(index: int, stages: int) -> str:
    """How every command shows a stage: numbered from 1, out of the plan's stages.

    The operator API's ``stage`` fields are indexes into ``plan.stages`` (from 0); an A/B
    experiment has no stages.

    >>> stage_label(0, 4), stage_label(3, 4), stage_label(0, 0)
    ('1/4', '4/4', '-')
    """
    return f"{index + 1}/{stages}" if stages else "-"


def _value(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def print_status(
    result: dict[str, Any], *, echo: Callable[[str], None] = typer.echo, timeline: bool = True
) -> None:
    """Print a rollout status (as the operator API returns it) for people."""
    plan = result["plan"]
    stages = plan.get("stages", [])
    where = (
        f"stage {stage_label(result['stage'], len(stages))} "
        f"({stages[result['stage']]['kind']} {stages[result['stage']]['share']:.0%})"
        if stages
        else "A/B experiment"
    )
    echo(
        f"{result['rollout_id']}  {result['model']} {result['previous']['version']} -> "
        f"{result['candidate']['version']}  {result['state'].upper()}  {where}"
    )
    if result["reason"]:
        echo(f"reason: {result['reason']}")
    devices = result["devices"]
    echo("devices: " + ", ".join(f"{k} {v}" for k, v in devices.items()))
    st = result["status"]
    if st.get("gates"):
        _table(
            [
                [
                    g["metric"],
                    _value(g["value"]),
                    f"{g['op']} {g['threshold']:g}",
                    g["outcome"],
                    f"{g['devices']}/{g['required_devices']}",
                    str(g["inferences"]),
                    g["reason"][:70],
                ]
                for g in st["gates"]
            ],
            ["GATE", "VALUE", "THRESHOLD", "OUTCOME", "DEVICES", "INFERENCES", "WHY"],
            echo,
        )
    if st.get("decision"):
        echo(f"decision: {st['decision']['action']}: {st['decision']['reason']}")
    if st.get("comparisons") is not None:
        for metric, c in st["comparisons"].items():
            echo(
                f"  {metric}: A {c['mean_a']:.4g} (n={c['n_a']})  B {c['mean_b']:.4g} "
                f"(n={c['n_b']})  B-A {c['diff']:+.4g} "
                f"[{c['ci_low']:+.4g}, {c['ci_high']:+.4g}] ({c['method']})"
            )
        rec = st.get("recommendation") or {}
        if rec:
            echo(f"recommendation: {rec['verdict']}: {rec['reason']}")
    if not timeline:
        return
    echo("timeline:")
    for event in result["timeline"]:
        extra = {k: v for k, v in event.items() if k not in ("at", "kind", "gates")}
        if "stage" in extra:
            extra["stage"] = stage_label(int(extra["stage"]), len(stages))
        shown = ", ".join(f"{k}={v}" for k, v in extra.items())
        echo(f"  {_when(event['at'])}  {event['kind']:<11} {shown}")


@policy_app.command("set")
def policy_set(
    to: Annotated[str, typer.Option("--to", help="Label selector, e.g. site=plant-3.")] = "",
    window: Annotated[
        list[str] | None,
        typer.Option(help="Maintenance window start, five-field cron in UTC; repeatable."),
    ] = None,
    duration: Annotated[str, typer.Option(help="How long each window stays open.")] = "1h",
    daily_bytes: Annotated[
        int | None, typer.Option(help="Per-device daily model download budget (bytes).")
    ] = None,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = "",
    ca_file: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set when matching devices may activate updates, and how much they may download a day."""
    from edgefleet.bench.units import parse_duration

    length = parse_duration(duration, "--duration")
    windows = [{"cron": w, "duration_s": length} for w in window or []]
    body = {"selector": to, "windows": windows, "daily_download_bytes": daily_bytes}
    with _client(server, token, ca_file) as client:
        result = client.request("PUT", "/policies", json=body)
    if as_json:
        _print_json(result)
    else:
        typer.echo(f"policy set for {to or 'every device'}: {len(result['devices'])} device(s)")


@policy_app.command("clear")
def policy_clear(
    to: Annotated[str, typer.Option("--to", help="The selector whose policy to remove.")] = "",
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = "",
    ca_file: CaOpt = None,
) -> None:
    """Remove the update policy of a selector."""
    with _client(server, token, ca_file) as client:
        result = client.request("DELETE", "/policies", params={"selector": to})
    typer.echo(f"policy removed for {to or 'every device'}: {len(result['devices'])} device(s)")


@policy_app.command("list")
def policy_list(
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = "",
    ca_file: CaOpt = None,
) -> None:
    """Every update policy."""
    with _client(server, token, ca_file) as client:
        _print_json(client.request("GET", "/policies"))
