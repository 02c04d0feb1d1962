"""Operator commands: ``model``, ``device``, ``enroll-token`` and ``deploy``.

The lifecycle commands (``device decommission|label``, ``enroll-token list|revoke``,
``deployment``, ``audit``) live in :mod:`edgefleet.cli.lifecycle`.

They talk to a running ``edgefleet server`` over its operator API: ``--server`` (or
``EDGEFLEET_SERVER``) and ``--token`` (or ``EDGEFLEET_TOKEN``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edgefleet.cli.exit_codes import EXIT_TIMED_OUT
from edgefleet.errors import ConfigurationError

if TYPE_CHECKING:  # imported when a command runs: httpx is not for `serve` or `agent`
    from edgefleet.cli.operator_client import OperatorClient

__all__ = ["device_app", "enroll_token_app", "model_app", "register"]

ServerOpt = Annotated[
    str,
    typer.Option(envvar="EDGEFLEET_SERVER", help="Control plane URL."),
]
TokenOpt = Annotated[
    str,
    typer.Option(envvar="EDGEFLEET_TOKEN", help="Operator token.", show_default=False),
]
CaOpt = Annotated[
    Path | None,
    typer.Option("--ca-file", envvar="EDGEFLEET_CA_FILE", help="CA bundle (PEM) for HTTPS."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
DEFAULT_SERVER = "http://127.0.0.1:8400"

model_app = typer.Typer(help="Push and inspect models in the registry.", rich_markup_mode=None)
device_app = typer.Typer(
    help="List, inspect, label and decommission enrolled devices.", rich_markup_mode=None
)
enroll_token_app = typer.Typer(
    help="Create, list and revoke enrolment tokens for agents.", rich_markup_mode=None
)


def _client(server: str, token: str, ca_file: Path | None) -> OperatorClient:
    from edgefleet.cli.operator_client import OperatorClient

    return OperatorClient(server, token, ca_file=ca_file)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True))


def _table(
    rows: list[list[str]], header: list[str], echo: Callable[[str], None] = typer.echo
) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


@model_app.command("push")
def model_push(
    file: Annotated[Path, typer.Argument(help="ONNX model file.", exists=False)],
    name: Annotated[str, typer.Option(help="Model name (stable across versions).")],
    version: Annotated[
        str | None, typer.Option(help="Version label [default: next integer].")
    ] = None,
    calibration: Annotated[
        Path | None,
        typer.Option(help="Labelled npz (x, y) to fit temperature-scaling calibration."),
    ] = None,
    golden: Annotated[
        int,
        typer.Option(min=0, max=64, help="Golden inputs kept for on-device smoke tests (0-64)."),
    ] = 8,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = "",
    ca_file: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate FILE with ONNX Runtime and store it in the registry as NAME@VERSION."""
    if not file.is_file():
        raise ConfigurationError(f"model file {file} does not exist")
    if calibration is not None:  # checked here too, to name the file as the user typed it
        from edgefleet.runtime.npz import read_npz

        read_npz(calibration, what="calibration file", keys=("x", "y"))
    with _client(server, token, ca_file) as client:
        result = client.push(
            file, name=name, version=version, golden=golden, calibration=calibration
        )
    if as_json:
        _print_json(result)
        return
    row = result["model"]
    verb = "pushed" if result["created"] else "already in the registry:"
    typer.echo(
        f"{verb} {row['name']}@{row['version']} sha256={row['sha256'][:16]}… "
        f"{row['size_bytes']} bytes, opset {row['opset']}"
    )
    if row.get("calibration"):
        c = row["calibration"]
        typer.echo(
            f"calibration: temperature {c['temperature']:.3f}, ECE {c['ece_before']:.4f} -> "
            f"{c['ece_after']:.4f} on {c['n']} samples"
        )
        if c.get("applied") is False:
            typer.echo(f"calibration not applied: {c['note']}")


@model_app.command("list")
def model_list(
    name: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = "",
    ca_file: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List model versions in the registry."""
    with _client(server, token, ca_file) as client:
        rows = client.request("GET", "/models", params={"name": name} if name else None)
    if as_json:
        _print_json(rows)
        return
    _table(
        [
            [r["name"], r["version"], r["sha256"][:12], str(r["size_bytes"]), str(r["opset"])]
            for r in rows
        ],
        ["NAME", "VERSION", "SHA256", "BYTES", "OPSET"],
    )


@model_app.command("show")
def model_show(
    name: Annotated[str, typer.Argument(help="Model name.")],
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = "",
    ca_file: CaOpt = None,
) -> None:
    """Show a model's versions, metadata and releases (JSON)."""
    with _client(server, token, ca_file) as client:
        _print_json(client.request("GET", f"/models/{name}"))


@device_app.command("list")
def device_list(
    selector: Annotated[str, typer.Option(help="Label selector, e.g. region=eu.")] = "",
    decommissioned: Annotated[
        bool, typer.Option("--decommissioned", help="List the decommissioned devices instead.")
    ] = False,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = "",
    ca_file: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List devices with their labels, state and active model (enrolled ones unless asked)."""
    params: dict[str, str] = {"selector": selector}
    if decommissioned:
        params["decommissioned"] = "true"
    with _client(server, token, ca_file) as client:
        rows = client.request("GET", "/devices", params=params)
    if as_json:
        _print_json(rows)
        return
    now = time.time()
    table = []
    for r in rows:
        active = (r.get("inventory") or {}).get("active_model") or {}
        seen = r.get("last_seen_at")
        table.append(
            [
                r["device_id"],
                "decommissioned"
                if r.get("decommissioned_at")
                else ("online" if r["online"] else "offline"),
                ",".join(f"{k}={v}" for k, v in sorted(r["labels"].items())),
                f"{active['name']}@{active['version']}" if active else "-",
                f"{now - seen:.0f}s ago" if seen else "never",
            ]
        )
    _table(table, ["DEVICE", "STATE", "LABELS", "ACTIVE MODEL", "LAST SEEN"])


@device_app.command("show")
def device_show(
    device_id: Annotated[str, typer.Argument(help="Device id.")],
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = "",
    ca_file: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a device: inventory, desired state, telemetry per model version, recent events."""
    with _client(server, token, ca_file) as client:
        data = client.request("GET", f"/devices/{device_id}")
    if as_json:
        _print_json(data)
        return
    device = data["device"]
    inv = device.get("inventory") or {}
    typer.echo(f"device {device['device_id']} ({'online' if device['online'] else 'offline'})")
    from edgefleet.cli.lifecycle import labels_text, stamp

    if device.get("decommissioned_at") is not None:
        typer.echo(f"  decommissioned at {stamp(device['decommissioned_at'])}")
    typer.echo(f"  labels: {labels_text(device['labels'])}")
    typer.echo(
        f"  {inv.get('arch', '?')}, {inv.get('cpu_count', '?')} CPUs, onnxruntime "
        f"{inv.get('onnxruntime_version', '?')}, providers {inv.get('execution_providers', [])}"
    )
    desired = (data.get("desired") or {}).get("model")
    typer.echo(
        f"  desired: {desired['name']}@{desired['version']} r{desired['release']}"
        if desired
        else "  desired: none"
    )
    active = inv.get("active_model")
    typer.echo(f"  active: {active['name']}@{active['version']}" if active else "  active: none")
    print_telemetry(data["telemetry"])
    for event in data["events"][:10]:
        mark = "ok" if event.get("ok", True) else "FAIL"
        typer.echo(
            f"  event {stamp(event.get('at'))} {event['kind']} {event.get('version', '')} "
            f"{mark} {event['detail']}"
        )


def print_telemetry(rows: list[dict[str, Any]]) -> None:
    """Print merged telemetry rows (one per model version) as a table."""
    _table(
        [
            [
                f"{r['model']}@{r['version']}",
                str(r["devices"]),
                str(r["count"]),
                _pct(r["error_rate"]),
                _ms(r["p50_ms"]),
                _ms(r["p99_ms"]),
                "-" if r["mean_confidence"] is None else f"{r['mean_confidence']:.3f}",
            ]
            for r in rows
        ],
        ["MODEL", "DEVICES", "INFERENCES", "ERRORS", "P50 MS", "P99 MS", "MEAN CONF"],
    )


@enroll_token_app.command("create")
def enroll_token_create(
    labels: Annotated[str, typer.Option(help="Labels for devices enrolling, k=v,...")] = "",
    uses: Annotated[int | None, typer.Option(help="Enrolments allowed [default: any].")] = None,
    ttl: Annotated[float, typer.Option(help="Lifetime in seconds.")] = 86400.0,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = "",
    ca_file: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an enrolment token (printed once) for `edgefleet agent --enroll-token`."""
    from edgefleet.protocol.labels import parse_selector

    body = {"labels": parse_selector(labels), "uses": uses, "ttl_s": ttl}
    with _client(server, token, ca_file) as client:
        result = client.request("POST", "/enroll-tokens", json=body)
    if as_json:
        _print_json(result)
    else:
        typer.echo(result["token"])


def deploy(
    target: Annotated[str, typer.Argument(help="NAME@VERSION to deploy.")],
    to: Annotated[str, typer.Option("--to", help="Label selector, e.g. region=eu,hw=orin-nx.")],
    allow_empty: Annotated[
        bool,
        typer.Option(
            "--allow-empty", help="Deploy even if no device matches now (only later enrolments)."
        ),
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until every targeted device serves it.")
    ] = False,
    timeout: Annotated[
        float, typer.Option(min=0.0, max=7 * 86400.0, help="Seconds --wait waits.")
    ] = 600.0,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = "",
    ca_file: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Assign NAME@VERSION to every device matching the selector (and later enrolments).

    Refused while a rollout or federated job is active on any of those devices, and when the
    selector matches no device (unless --allow-empty). With --wait it reports progress until
    every targeted device serves the version, and exits 13 naming the stragglers on --timeout.
    """
    from edgefleet.cli.lifecycle import wait_for_deployment

    name, sep, version = target.partition("@")
    if not sep or not name or not version:
        raise ConfigurationError(f"deploy target {target!r} must be NAME@VERSION")
    body = {"model": name, "version": version, "selector": to, "allow_empty": allow_empty}
    with _client(server, token, ca_file) as client:
        result = client.request("POST", "/deployments", json=body)
        if as_json:
            _print_json(result)
        else:
            typer.echo(
                f"deployed {name}@{version} (release {result['release']}) to "
                f"{len(result['devices'])} device(s) matching {to or 'everything'}"
            )
        if not wait:
            return
        echo = (lambda _: None) if as_json else typer.echo
        late = wait_for_deployment(client, result["deployment_id"], timeout, echo=echo)
    if late:
        names = ", ".join(
            f"{p['device_id']} ({p['serving'] or 'nothing'}, "
            f"{'online' if p['online'] else 'offline'})"
            for p in late
        )
        typer.echo(
            f"error: after {timeout:g} s, {len(late)} device(s) do not serve "
            f"{name}@{version}: {names}",
            err=True,
        )
        raise typer.Exit(EXIT_TIMED_OUT)
    if not as_json:
        typer.echo(f"every targeted device serves {name}@{version}")


def register(app: typer.Typer) -> None:
    """Add the operator commands to the top-level app."""
    app.add_typer(model_app, name="model")
    app.add_typer(device_app, name="device")
    app.add_typer(enroll_token_app, name="enroll-token")
    app.command("deploy")(deploy)
    from edgefleet.cli import lifecycle  # adds its commands to the device and token groups

    lifecycle.register(app)
