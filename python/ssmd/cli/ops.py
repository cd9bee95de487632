"""`ssmd ops`: run the day through Temporal: start, stop, status, schedules (docs/operations.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from ssmd.cli.options import ConfigDirOption, DataDirOption, EnvOption, JsonOption
from ssmd.cli.output import print_json, print_table, print_text, stderr
from ssmd.cli.worker import TemporalAddressOption

app = typer.Typer(
    help="Daily operations through Temporal: start, stop, status, schedules.",
    no_args_is_help=True,
)
schedule_app = typer.Typer(
    help="The environment's schedule as Temporal Schedules.", no_args_is_help=True
)
app.add_typer(schedule_app, name="schedule")

T = TypeVar("T")

RuntimeOption = typer.Option("local", help="Where the components run: local or kubernetes.")
WaitOption = typer.Option(True, "--wait/--no-wait", help="Wait for the workflow to finish.")


def resolve_all(
    env: str, config_dir: Path | None, data_dir: str | None, address: str | None
) -> tuple[Any, list[Any]]:
    """The environment resolved for its own feed, and for each of its further venues."""
    from ssmd.cli.exits import component_errors
    from ssmd.config import Overrides, load_environment

    overrides = Overrides(data_dir=data_dir, temporal_address=address)
    with component_errors():
        resolved = load_environment(env, config_dir, overrides)
        venues = [
            load_environment(env, config_dir, overrides, feed=feed) for feed in resolved.feeds[1:]
        ]
        return resolved, venues


def resolve(env: str, config_dir: Path | None, data_dir: str | None, address: str | None) -> Any:
    return resolve_all(env, config_dir, data_dir, address)[0]


def with_client(resolved: Any, address: str | None, body: Callable[[Any], Awaitable[T]]) -> T:
    """Run `body(client)`; a Temporal that does not answer is one line naming it (exit 2)."""
    from ssmd.exceptions import ConfigError
    from ssmd.ops.temporal import address_of, connect

    async def main() -> T:
        client = await connect(address_of(resolved, address), resolved.temporal_namespace)
        return await body(client)

    try:
        return asyncio.run(main())
    except ConfigError as exc:
        stderr.print(f"error: {exc}", markup=False)
        raise typer.Exit(2) from None


def run_kind(
    env: str,
    kind: str,
    config_dir: Path | None,
    data_dir: str | None,
    address: str | None,
    wait: bool,
    as_json: bool,
) -> None:
    """Start workflow `kind` (startup, teardown, roll, secmaster); with `wait`, its result."""
    from temporalio.client import WorkflowFailureError
    from temporalio.exceptions import WorkflowAlreadyStartedError

    from ssmd.ops.control import trigger

    resolved = resolve(env, config_dir, data_dir, address)

    async def body(client: Any) -> tuple[str, Any]:
        try:
            handle = await trigger(client, resolved.name, kind)
        except WorkflowAlreadyStartedError as exc:
            return "running", f"{exc.workflow_id} is already running"
        if not wait:
            return "started", handle.id
        try:
            return "done", await handle.result()
        except WorkflowFailureError as exc:
            cause: Any = exc.cause
            while getattr(cause, "cause", None) is not None:
                cause = cause.cause
            return "failed", str(cause or exc)

    outcome, detail = with_client(resolved, address, body)
    if as_json:
        print_json({"ok": outcome in ("started", "done"), "outcome": outcome, "result": detail})
    elif outcome == "done":
        print_text(f"{kind} done")
        print_json(detail)
    else:
        print_text(f"{kind} {outcome}: {detail}")
    if outcome in ("failed", "running"):
        raise typer.Exit(1)


@app.command()
def start(
    env: EnvOption,
    config_dir: ConfigDirOption = None,
    data_dir: DataDirOption = None,
    temporal_address: TemporalAddressOption = None,
    wait: bool = WaitOption,
    json_: JsonOption = False,
) -> None:
    """Run DailyStartup now: secmaster sync, connector, archiver, gateway, health check."""
    run_kind(env, "startup", config_dir, data_dir, temporal_address, wait, json_)


@app.command()
def stop(
    env: EnvOption,
    config_dir: ConfigDirOption = None,
    data_dir: DataDirOption = None,
    temporal_address: TemporalAddressOption = None,
    wait: bool = WaitOption,
    json_: JsonOption = False,
) -> None:
    """Run DailyTeardown now: drain, stop, seal, verify the archive, close the day."""
    run_kind(env, "teardown", config_dir, data_dir, temporal_address, wait, json_)


@app.command()
def status(
    env: EnvOption,
    config_dir: ConfigDirOption = None,
    data_dir: DataDirOption = None,
    temporal_address: TemporalAddressOption = None,
    runtime: str = RuntimeOption,
    namespace: str = typer.Option("default", help="Kubernetes namespace."),
    json_: JsonOption = False,
) -> None:
    """Each component's state and last error, the workflows in progress, recent failures."""
    from ssmd.exceptions import ConfigError
    from ssmd.ops.control import recent_failures, running
    from ssmd.ops.temporal import address_of, connect
    from ssmd.ops.worker import make_runtime

    resolved, venues = resolve_all(env, config_dir, data_dir, temporal_address)
    rt = make_runtime(runtime, resolved, venues=venues, namespace=namespace)

    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {"components": [s.as_dict() for s in await rt.states()]}
        try:
            client = await connect(
                address_of(resolved, temporal_address), resolved.temporal_namespace
            )
        except ConfigError as exc:
            out["temporal_error"] = str(exc)
            return out
        out["workflows"] = await running(client, resolved.name)
        out["failures"] = await recent_failures(client, resolved.name)
        return out

    report = asyncio.run(main())
    if json_:
        print_json(report)
    else:
        rows = [(c["name"], c["state"], c["detail"], c["last_error"]) for c in report["components"]]
        print_table("components", ("component", "state", "detail", "last error"), rows)
        if "workflows" in report:
            wf_rows = [
                (
                    w["workflow"],
                    w["id"],
                    w["step"],
                    "; ".join(
                        f"{p['activity']} attempt {p['attempt']}"
                        + (f": {p['last_failure']}" if p["last_failure"] else "")
                        for p in w["pending"]
                    ),
                )
                for w in report["workflows"]
            ]
            print_table("in progress", ("workflow", "id", "step", "activities"), wf_rows)
            fail_rows = [
                (f["workflow"], f["id"], f["closed"], f["error"]) for f in report["failures"]
            ]
            print_table("recent failures", ("workflow", "id", "closed", "error"), fail_rows)
    if "temporal_error" in report:
        stderr.print(f"error: {report['temporal_error']}", markup=False)
        raise typer.Exit(2)


@app.command()
def down(
    env: EnvOption,
    config_dir: ConfigDirOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Stop every process the local runtime started, NATS and the simulator included."""
    from ssmd.ops.local import LocalRuntime

    resolved, venues = resolve_all(env, config_dir, data_dir, None)
    asyncio.run(LocalRuntime(resolved, venues=venues).stop_everything())
    print_text("stopped")


@schedule_app.command("apply")
def schedule_apply(
    env: EnvOption,
    config_dir: ConfigDirOption = None,
    data_dir: DataDirOption = None,
    temporal_address: TemporalAddressOption = None,
    json_: JsonOption = False,
) -> None:
    """Create or update the startup, teardown and secmaster schedules (overlap: skip)."""
    from ssmd.ops import schedules

    resolved = resolve(env, config_dir, data_dir, temporal_address)
    done = with_client(resolved, temporal_address, lambda c: schedules.apply(c, resolved))
    if json_:
        print_json(done)
    else:
        print_table(
            f"schedules of {resolved.name}",
            ("schedule", "change"),
            [(schedules.schedule_id(resolved.name, k), v) for k, v in done.items()],
        )


@schedule_app.command("show")
def schedule_show(
    env: EnvOption,
    config_dir: ConfigDirOption = None,
    data_dir: DataDirOption = None,
    temporal_address: TemporalAddressOption = None,
    json_: JsonOption = False,
) -> None:
    """The schedules with their next run times (in the schedule's time zone)."""
    from ssmd.ops import schedules

    resolved = resolve(env, config_dir, data_dir, temporal_address)
    rows = with_client(resolved, temporal_address, lambda c: schedules.show(c, resolved))
    if json_:
        print_json(rows)
    else:
        print_table(
            f"schedules of {resolved.name} ({resolved.schedule.timezone})",
            ("schedule", "exists", "next runs", "last run"),
            [(r["schedule"], r["exists"], ", ".join(r["next"]), r.get("last_run")) for r in rows],
        )
