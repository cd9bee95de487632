"""`ssmd up`: the whole system on one machine (docs/up.md).

Runs nats-server (embedded unless the environment names one), the simulator (for a
simulator environment), the secmaster sync and live updates, the connector, the
archiver and the gateway as child processes, shows their figures while they run,
and stops them in order with a report of what was archived.

    from ssmd.up.run import Up, UpOptions
    code = await Up(resolved_env, UpOptions(port=8080, sim=True), display).run(stop_event)

Modules: run (the order of things), children (processes and the restart policy),
components (each child's command line and readiness), nats (the embedded server),
simulator, status (figures from /metrics), display (rich or JSON lines), report
(the archive after a run). The lock and the state file other commands read are
ssmd.upstate, outside this package, so that ssmd.config can read them.
"""
