"""Helpers for the render tests: collect PromQL from the committed files, pull metric names out
of it, and parse it with promtool."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

#: Grafana's built-in variables, replaced by something PromQL accepts.
GRAFANA_BUILTINS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}
#: Values for the dashboards' own variables where ".*" would not fit.
VARIABLE_VALUES = {"dtype": "bf16"}

_VARIABLE = re.compile(r"\$\{?(\w+)\}?")
_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")
_PROMQL_BLOCK = re.compile(r"```promql\n(.*?)\n```", re.S)
_PLACEHOLDER = re.compile(r"<(\w+)>")

_KEYWORDS = frozenset(
    {"and", "or", "unless", "offset", "bool", "inf", "nan", "by", "without", "on", "ignoring"}
)
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?")


def substitute(expr: str) -> str:
    """A dashboard query with its template variables replaced by valid values."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return GRAFANA_BUILTINS.get(name) or VARIABLE_VALUES.get(name, ".*")

    return _VARIABLE.sub(value, expr)


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, keywords and labels left out)."""
    text = re.sub(r"\{[^{}]*\}", "", expr)  # label matchers
    text = re.sub(r"\[[^\[\]]*\]", "", text)  # range and subquery windows
    text = re.sub(r'"[^"]*"', '""', text)  # string arguments (label_replace)
    text = _GROUPING.sub("", text)  # label lists of aggregations and joins
    text = re.sub(r"\bgroup_(left|right)\b", "", text)
    names = set()
    for match in _IDENT.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name in _KEYWORDS:
            continue
        names.add(name)
    return names


def dashboard_files(root: Path) -> list[Path]:
    return sorted((root / "dashboards").glob("*.json"))


def dashboard_exprs(root: Path) -> dict[str, str]:
    """Every query of every panel, and every variable's selector, keyed by where it is."""
    exprs: dict[str, str] = {}
    for path in dashboard_files(root):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                exprs[f"{path.name}: {panel['title']} {target['refId']}"] = target["expr"]
        for variable in board["templating"]["list"]:
            query = variable.get("query")
            if variable["type"] == "query" and isinstance(query, str):
                match = _LABEL_VALUES.match(query)
                assert match, f"{path.name}: ${variable['name']} is not label_values(): {query}"
                exprs[f"{path.name}: ${variable['name']}"] = match.group("selector")
    return exprs


def rule_file_paths(root: Path) -> list[Path]:
    return sorted((root / "alerts").glob("*.yml"))


def rule_exprs(root: Path) -> dict[str, str]:
    """Every rule's expression in alerts/*.yml, keyed by the rule's name."""
    exprs: dict[str, str] = {}
    for path in rule_file_paths(root):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                exprs[rule.get("record") or rule["alert"]] = rule["expr"]
    return exprs


def recorded_names(root: Path) -> set[str]:
    """Names of the recording rules defined in alerts/*.yml."""
    names: set[str] = set()
    for path in rule_file_paths(root):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names.update(rule["record"] for rule in group["rules"] if "record" in rule)
    return names


def runbook_exprs(root: Path) -> dict[str, str]:
    """Every ```promql block of docs/runbooks/*.md, placeholders like <engine> filled in."""
    exprs: dict[str, str] = {}
    for path in sorted((root / "docs" / "runbooks").glob("*.md")):
        for i, block in enumerate(_PROMQL_BLOCK.findall(path.read_text())):
            exprs[f"{path.name} #{i}"] = _PLACEHOLDER.sub(r"\1-x", block)
    return exprs


def promtool_parse(
    promtool: str, exprs: dict[str, str], workdir: Path
) -> subprocess.CompletedProcess[str]:
    """`promtool check rules` on a throwaway file holding each expression as a recording rule
    (promtool 2.42 has no command that checks a bare expression)."""
    rules = [
        {"record": f"parse_check:expr:{i}", "expr": substitute(expr)}
        for i, expr in enumerate(exprs.values())
    ]
    path = workdir / "parse-check.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "parse-check", "rules": rules}]}))
    return subprocess.run(
        [promtool, "check", "rules", str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
