"""The metric catalogue against what describes it: the Grafana dashboard in deploy/ and the
README's table, so neither names a metric headend does not export or leaves one out."""

from __future__ import annotations

import json
import re
from pathlib import Path

from headend.observability.metrics import Metrics
from headend.runs.admission import pool_labels
from headend.server.observer import surface_of

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"\bheadend_[a-z_]+")
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def exported() -> set[str]:
    """Every family name as Prometheus sees it (counters with their ``_total``)."""
    names = set()
    for family in Metrics().registry.collect():
        names.add(family.name + ("_total" if family.type == "counter" else ""))
    return names


def family(name: str) -> str:
    for suffix in ("_bucket", "_count", "_sum"):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def test_the_dashboard_queries_only_exported_metrics() -> None:
    dashboard = json.loads((ROOT / "deploy/grafana/headend-dashboard.json").read_text())
    queried = {
        family(name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in NAME.findall(target["expr"])
    }
    assert queried <= exported(), queried - exported()
    assert len(queried) >= len(exported()) - 1  # the dashboard shows nearly all of them
    assert dashboard["__inputs"][0]["pluginId"] == "prometheus"


def test_the_readme_documents_every_metric() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Operating headend") :]
    table = {name for name in NAME.findall(section.split("\n## ")[0])}
    assert exported() <= table, exported() - table


def test_surfaces_and_pools_are_fixed_words() -> None:
    assert surface_of("/v1/chat/completions") == "chat_completions"
    assert surface_of("/v1/responses/resp_123/input_items") == "responses"
    assert surface_of("/v1/sessions/sess_abc/messages") == "sessions"
    assert surface_of("/v1/whatever-a-client-sends") == "other"
    assert pool_labels("key:key_0123") == ("key", "")
    assert pool_labels("agent:assistant") == ("agent", "assistant")
    assert pool_labels("global") == ("global", "global")
