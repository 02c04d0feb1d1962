"""Fleet lifecycle and audit commands.

``device decommission|label``, ``enroll-token list|revoke``, ``deployment list|show``, ``audit``,
and the wait behind ``deploy --wait``. Like the other operator commands they talk to a running
control plane (``--server``, ``--token``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

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
    device_app,
    enroll_token_app,
)
from edgefleet.errors import ConfigurationError

if TYPE_CHECKING:
    from edgefleet.cli.operator_client import OperatorClient

__all__ = [
    "audit",
    "deployment_app",
    "labels_text",
    "parse_label_changes",
    "register",
    "stamp",
    "wait_for_deployment",
]

deployment_app = typer.Typer(
    help="The deployment history and each deployment's progress.", rich_markup_mode=None
)
LimitOpt = Annotated[int, typer.Option(min=1, max=1000, help="Most rows shown (1 to 1000).")]
BeforeOpt = Annotated[
    int | None,
    typer.Option(min=1, max=2**63 - 1, help="Page on: only ids below this one (printed last)."),
]


def stamp(at: float | None) -> str:
    """A Unix time as UTC ISO 8601 to the second (``-`` for None).

    >>> stamp(1_800_000_000.0)
    '2027-01-15T08:00:00Z'
    """
    if at is None:
        return "-"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def labels_text(labels: dict[str, str]) -> str:
    """Labels as ``k=v,k2=v2`` sorted by key (``-`` when there are none).

    >>> labels_text({"region": "eu", "hw": "x86"})
    'hw=x86,region=eu'
    """
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-"


def parse_label_changes(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """``k=v`` arguments to set and ``k-`` arguments to remove.

    >>> parse_label_changes(["region=eu", "hw-"])
    ({'region': 'eu'}, ['hw'])
    >>> parse_label_changes(["region"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    edgefleet.errors.ConfigurationError: label change 'region' must be KEY=VALUE (set) or ...
    """
    set_labels: dict[str, str] = {}
    remove: list[str] = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key:
            set_labels[key] = value
        elif arg.endswith("-") and len(arg) > 1 and "=" not in arg:
            remove.append(arg[:-1])
        else:
            raise ConfigurationError(
                f"label change {arg!r} must be KEY=VALUE (set) or KEY- (remove)"
            )
    return set_labels, remove


@device_app.command("decommission")
def device_decommission(
    device_id: Annotated[str, typer.Argument(help="Device id.")],
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = "",
    ca_file: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Retire a device: revoke its credential, drop it from every selection.

    It leaves deployments, rollouts and federated rounds; its history stays (`device show`).
    """
    with _client(server, token, ca_file) as client:
        row = client.request("POST", f"/devices/{device_id}/decommission")
    if as_json:
        _print_json(row)
        return
    typer.echo(f"decommissioned {row['device_id']} at {stamp(row['decommissioned_at'])}")


@device_app.command("label")
def device_label(
    device_id: Annotated[str, typer.Argument(help="Device id.")],
    changes: Annotated[
        list[str], typer.Argument(help="KEY=VALUE to set or replace, KEY- to remove.")
    ],
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = "",
    ca_file: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set, replace or remove labels of a device (selectors see them at once)."""
    set_labels, remove = parse_label_changes(changes)
    with _client(server, token, ca_file) as client:
        row = client.request(
            "PATCH", f"/devices/{device_id}/labels", json={"set": set_labels, "remove": remove}
        )
    if as_json:
        _print_json(row)
        return
    typer.echo(f"{row['device_id']} labels: {labels_text(row['labels'])}")


@enroll_token_app.command("list")
def enroll_token_list(
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = "",
    ca_file: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List enrolment tokens (never their secrets) with their state."""
    with _client(server, token, ca_file) as client:
        rows = client.request("GET", "/enroll-tokens")
    if as_json:
        _print_json(rows)
        return
    table = [
        [
            str(r["id"]),
            r["state"],
            labels_text(r["labels"]),
            "any" if r["uses"] is None else f"{r['remaining']}/{r['uses']}",
            stamp(r["expires_at"]),
            stamp(r["created_at"]),
        ]
        for r in rows
    ]
    _table(table, ["ID", "STATE", "LABELS", "LEFT", "EXPIRES", "CREATED"])


@enroll_token_app.command("revoke")
def enroll_token_revoke(
    token_id: Annotated[int, typer.Argument(min=1, max=2**63 - 1, help="Token id (list).")],
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = "",
    ca_file: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke an enrolment token: it enrols no more devices (enrolled ones stay)."""
    with _client(server, token, ca_file) as client:
        row = client.request("POST", f"/enroll-tokens/{token_id}/revoke")
    if as_json:
        _print_json(row)
        return
    typer.echo(f"enrolment token {row['id']} revoked at {stamp(row['revoked_at'])}")


@deployment_app.command("list")
def deployment_list(
    model: Annotated[str | None, typer.Option(help="Only this model's deployments.")] = None,
    limit: LimitOpt = 50,
    before: BeforeOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = "",
    ca_file: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The deployment history, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if model:
        params["model"] = model
    if before is not None:
        params["before"] = before
    with _client(server, token, ca_file) as client:
        page = client.request("GET", "/deployments", params=params)
    if as_json:
        _print_json(page)
        return
    table = [
        [
            str(d["id"]),
            stamp(d["created_at"]),
            f"{d['model']}@{d['version']}",
            str(d["release"]),
            labels_text(d["selector"]) if d["selector"] else "(all)",
            str(len(d["devices"])),
            d["actor"],
        ]
        for d in page["deployments"]
    ]
    _table(table, ["ID", "TIME", "MODEL", "RELEASE", "SELECTOR", "DEVICES", "BY"])
    if page["next_before"] is not None:
        typer.echo(f"(more: --before {page['next_before']})")


@deployment_app.command("show")
def deployment_show(
    deployment_id: Annotated[int, typer.Argument(min=1, max=2**63 - 1, help="Deployment id.")],
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = "",
    ca_file: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A deployment and which of its devices report serving its version."""
    with _client(server, token, ca_file) as client:
        data = client.request("GET", f"/deployments/{deployment_id}")
    if as_json:
        _print_json(data)
        return
    d = data["deployment"]
    typer.echo(
        f"deployment {d['id']}: {d['model']}@{d['version']} (release {d['release']}) by "
        f"{d['actor']} at {stamp(d['created_at'])}: {data['done']}/{data['total']} devices"
    )
    _table(
        [
            [
                p["device_id"],
                "decommissioned" if p["decommissioned"] else "online" if p["online"] else "offline",
                p["serving"] or "-",
                "yes" if p["done"] else "no",
            ]
            for p in data["devices"]
        ],
        ["DEVICE", "STATE", "SERVING", "DONE"],
    )


def wait_for_deployment(
    client: OperatorClient,
    deployment_id: int,
    timeout_s: float,
    *,
    interval_s: float = 1.0,
    echo: Callable[[str], None] = typer.echo,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict[str, Any]]:
    """Poll a deployment's progress until every device reports its version or time runs out.

    Prints a line whenever the count moves. Returns the devices still not on the version
    (empty: all done).
    """
    deadline = clock() + timeout_s
    shown: int | None = None
    while True:
        data = client.request("GET", f"/deployments/{deployment_id}")
        d = data["deployment"]
        if data["done"] != shown:
            shown = data["done"]
            echo(f"  {data['done']}/{data['total']} devices serve {d['model']}@{d['version']}")
        stragglers: list[dict[str, Any]] = [
            p for p in data["devices"] if not p["done"] and not p["decommissioned"]
        ]
        if not stragglers or clock() >= deadline:
            return stragglers
        sleep(min(interval_s, max(0.0, deadline - clock())))


def audit(
    limit: LimitOpt = 50,
    before: BeforeOpt = None,
    actor: Annotated[str | None, typer.Option(help="Only this actor (token name, server).")] = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action or family (e.g. rollout).")
    ] = None,
    target: Annotated[str | None, typer.Option(help="Only this target.")] = None,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = "",
    ca_file: CaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The audit trail, newest first: operator actions and the server's automatic decisions."""
    params: dict[str, Any] = {"limit": limit}
    for key, value in (("before", before), ("actor", actor), ("action", action)):
        if value is not None:
            params[key] = value
    if target is not None:
        params["target"] = target
    with _client(server, token, ca_file) as client:
        page = client.request("GET", "/audit", params=params)
    if as_json:
        _print_json(page)
        return
    table = [
        [stamp(e["at"]), e["actor"], e["action"], e["target"] or "-", e["outcome"]]
        for e in page["entries"]
    ]
    _table(table, ["TIME", "ACTOR", "ACTION", "TARGET", "OUTCOME"])
    if page["next_before"] is not None:
        typer.echo(f"(more: --before {page['next_before']})")


def register(app: typer.Typer) -> None:
    """Add ``deployment`` and ``audit`` to the top-level app.

    The device and enrolment-token commands join their groups when this module is imported.
    """
    app.add_typer(deployment_app, name="deployment")
    app.command("audit")(audit)
