"""`ssmd tui`: a terminal interface for administering an environment (docs/tui.md).

It reads and acts only through the services: the gateway, the archive through
`ssmd.data`, the components' control endpoints, and `ssmd up` or the operations layer
for starting and stopping components (ssmd.tui.backend)."""
