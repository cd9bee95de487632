"""Data issues: reports that some market's data over some time range looks wrong.

An agent (the MCP server's `report_data_issue`) or a person (`POST /v1/data-issues` on
the gateway) reports a market, a time range and what looks wrong; the report is stored
with its reporter in the security master database, published to the journal
`{env}.journal.data_issue`, and shown next to the day's gaps in `ssmd data quality`
until someone resolves it (`ssmd data issues resolve`). docs/data.md, "Data issues".
"""

from ssmd.issues.model import DataIssue, Report, parse_report, parse_time
from ssmd.issues.store import Entry, get, list_issues, report, resolve

__all__ = [
    "DataIssue",
    "Entry",
    "Report",
    "get",
    "list_issues",
    "parse_report",
    "parse_time",
    "report",
    "resolve",
]
