"""A participant's session as a timeline: every event of their tasks, in time order."""

from __future__ import annotations

import datetime as dt
import html
import json
from typing import Any

from duetml.study.activity import is_operation, session_events
from duetml.study.design import Study

# Fields that say nothing a reader of the timeline needs.
_QUIET = {"ts", "source", "event", "participant", "task", "by", "provider", "model"}


def timeline(study: Study, pid: str) -> list[dict[str, Any]]:
    """Each event with its offset from the session's first event, its task and a summary."""
    study.participant_dir(pid)  # a clear error for an unknown id
    events = session_events(study, pid)
    events = [e for e in events if e.get("event") != "init"]  # made by `study init`, not them
    start = float(events[0]["ts"]) if events else 0.0
    return [
        {
            "t": round(float(e.get("ts", 0)) - start, 1),
            "time": dt.datetime.fromtimestamp(float(e.get("ts", 0)), dt.UTC).strftime("%H:%M:%S"),
            "task": e.get("task", "?"),
            "event": e.get("event", "?"),
            "who": "agent"
            if e.get("by") == "agent" or str(e.get("event", "")).startswith("agent_")
            else ("study" if e.get("source") == "study" else "participant"),
            "operation": is_operation(e),
            "details": {k: v for k, v in e.items() if k not in _QUIET},
        }
        for e in events
    ]


def format_line(entry: dict[str, Any], width: int = 100) -> str:
    minutes, seconds = divmod(int(entry["t"]), 60)
    details = ", ".join(f"{k}={_short(v)}" for k, v in entry["details"].items())
    line = (
        f"+{minutes:02d}:{seconds:02d}  {entry['task']:<12} {entry['who']:<11} "
        f"{entry['event']:<22} {details}"
    )
    return line if len(line) <= width else line[: width - 1] + "…"


def _short(value: Any) -> str:
    if isinstance(value, list):
        return f"[{len(value)}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in list(value.items())[:6]) + "}"
    text = str(value)
    return text if len(text) <= 40 else text[:39] + "…"


def timeline_html(pid: str, entries: list[dict[str, Any]]) -> str:
    """The timeline as one self-contained page: a row per event, coloured by who acted."""
    rows = "\n".join(
        f'<tr class="{html.escape(e["who"])}"><td>+{int(e["t"]) // 60:02d}:{int(e["t"]) % 60:02d}'
        f"</td><td>{html.escape(str(e['task']))}</td><td>{html.escape(e['who'])}</td>"
        f"<td>{html.escape(str(e['event']))}</td>"
        f"<td><code>{html.escape(_details(e))}</code></td></tr>"
        for e in entries
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(pid)}: session timeline</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 24px; color: #1d2330; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border-bottom: 1px solid #dde1e9; padding: 4px 8px; text-align: left; }}
tr.agent {{ background: #fff6e5; }} tr.study {{ background: #e8ebfd; }}
code {{ font-size: 12px; white-space: pre-wrap; }}
</style></head><body>
<h1>{html.escape(pid)}: session timeline</h1>
<p>{len(entries)} events. Blue rows: the study's steps; orange: the assistant.</p>
<table><thead><tr><th>time</th><th>task</th><th>who</th><th>event</th><th>details</th></tr></thead>
<tbody>
{rows}
</tbody></table></body></html>
"""


def _details(entry: dict[str, Any]) -> str:
    return json.dumps(entry["details"], ensure_ascii=False)[:400]
