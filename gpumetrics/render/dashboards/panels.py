"""Panel and dashboard builders shared by the four dashboards (grafana-foundation-sdk).

Every panel gets the `${datasource}` Prometheus data source, a unit, a description and a
threshold set (base step `value=None`, as Grafana serialises -Infinity). Dashboards get a uid
derived from their name, so the committed JSON is stable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import gauge, heatmap, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.variants import Dataquery
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import heatmap as hm

from ...catalog import MetricSpec
from ...catalog import engine as e

__all__ = [
    "DATASOURCE",
    "LATENCY_PANELS",
    "NEUTRAL",
    "PanelBuilder",
    "Q",
    "Row",
    "Steps",
    "build_dashboard",
    "describe",
    "encode",
    "gauge_panel",
    "heatmap_panel",
    "stat_panel",
    "timeseries_panel",
    "uid_for",
]

DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")

#: The panel builders the dashboards use.
PanelBuilder = timeseries.Panel | stat.Panel | gauge.Panel | heatmap.Panel

#: Threshold steps as (lower bound, colour); the first bound is None (-Infinity).
Steps = Sequence[tuple[float | None, str]]

#: Neutral thresholds for panels where no level is good or bad.
NEUTRAL: Steps = ((None, "green"),)

#: The engine latency histograms as the engine and fleet dashboards show them:
#: (title, histogram, thresholds in seconds).
LATENCY_PANELS: tuple[tuple[str, MetricSpec, Steps], ...] = (
    ("Time to first token", e.TTFT, ((None, "green"), (1.0, "orange"), (5.0, "red"))),
    ("Inter-token latency", e.ITL, ((None, "green"), (0.05, "orange"), (0.1, "red"))),
    ("Request duration", e.E2E, ((None, "green"), (30.0, "orange"), (120.0, "red"))),
)


@dataclass(frozen=True, slots=True)
class Q:
    """One PromQL query of a panel and its legend (`{{label}}` templates)."""

    expr: str
    legend: str = ""
    instant: bool = False


@dataclass(frozen=True, slots=True)
class Row:
    """A titled row of panels; widths of a row's panels should add up to 24. A `collapsed`
    row holds its panels inside it (Grafana shows them when the row is opened): for panels
    whose series exist only when an option is on."""

    title: str
    panels: Sequence[PanelBuilder]
    collapsed: bool = False


def uid_for(name: str) -> str:
    """A stable dashboard uid from its name: `gpumetrics-fleet-capacity`."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return f"gpumetrics-{slug}"[:40]


def describe(spec: MetricSpec, extra: str = "") -> str:
    """A panel description that shows one catalog metric: its HELP text, then `extra`."""
    text = f"{spec.name}: {spec.help}"
    return f"{text} {extra}" if extra else text


def _thresholds(steps: Steps) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=value, color=color) for value, color in steps])
    )


def _targets(queries: Sequence[Q]) -> list[Builder[Dataquery]]:
    targets: list[Builder[Dataquery]] = []
    for i, q in enumerate(queries):
        target = prometheus.Dataquery().expr(q.expr).ref_id(chr(ord("A") + i))
        if q.legend:
            target = target.legend_format(q.legend)
        targets.append(target.instant() if q.instant else target.range())
    return targets


def timeseries_panel(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Q],
    *,
    steps: Steps = NEUTRAL,
    show_thresholds: bool = False,
    min_value: float | None = None,
    max_value: float | None = None,
    axis_label: str = "",
    stacked: bool = False,
    log_scale: bool = False,
    width: int = 12,
    height: int = 8,
) -> timeseries.Panel:
    """A time series panel; `show_thresholds` draws the threshold levels as dashed lines."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .thresholds(_thresholds(steps))
        .targets(_targets(queries))
        .legend(
            cb.VizLegendOptions()
            .show_legend(True)
            .display_mode(cm.LegendDisplayMode.LIST)
            .placement(cm.LegendPlacement.BOTTOM)
        )
        .tooltip(
            cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING)
        )
        .line_width(1)
        .fill_opacity(10)
        .span(width)
        .height(height)
    )
    if show_thresholds:
        panel = panel.thresholds_style(
            cb.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.DASHED)
        )
    if min_value is not None:
        panel = panel.min(min_value)
    if max_value is not None:
        panel = panel.max(max_value)
    if axis_label:
        panel = panel.axis_label(axis_label)
    if stacked:
        panel = panel.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL))
    if log_scale:
        panel = panel.scale_distribution(
            cb.ScaleDistributionConfig().type(cm.ScaleDistribution.LOG).log(10)
        )
    return panel


def _reduce() -> cb.ReduceDataOptions:
    return cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def stat_panel(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Q],
    *,
    steps: Steps = NEUTRAL,
    mappings: Sequence[tuple[str, str, str]] = (),
    width: int = 6,
    height: int = 4,
) -> stat.Panel:
    """A single-value panel coloured by thresholds; `mappings` are (value, text, colour)."""
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .thresholds(_thresholds(steps))
        .targets(_targets(queries))
        .graph_mode(cm.BigValueGraphMode.AREA)
        .color_mode(cm.BigValueColorMode.VALUE)
        .justify_mode(cm.BigValueJustifyMode.AUTO)
        .text_mode(cm.BigValueTextMode.AUTO)
        .wide_layout(True)
        .show_percent_change(False)
        .percent_change_color_mode(cm.PercentChangeColorMode.STANDARD)
        .orientation(cm.VizOrientation.AUTO)
        .reduce_options(_reduce())
        .span(width)
        .height(height)
    )
    if mappings:
        options = {
            value: dm.ValueMappingResult(text=text, color=color, index=i)
            for i, (value, text, color) in enumerate(mappings)
        }
        panel = panel.mappings([dm.ValueMap(options=options)])
    return panel


def gauge_panel(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Q],
    *,
    steps: Steps,
    min_value: float = 0.0,
    max_value: float = 1.0,
    width: int = 6,
    height: int = 4,
) -> gauge.Panel:
    return (
        gauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(min_value)
        .max(max_value)
        .thresholds(_thresholds(steps))
        .targets(_targets(queries))
        .show_threshold_labels(False)
        .show_threshold_markers(True)
        .sizing(cm.BarGaugeSizing.AUTO)
        .min_viz_width(75)
        .min_viz_height(75)
        .orientation(cm.VizOrientation.AUTO)
        .reduce_options(_reduce())
        .span(width)
        .height(height)
    )


def heatmap_panel(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Q],
    *,
    bucket_size: str,
    steps: Steps = NEUTRAL,
    width: int = 12,
    height: int = 8,
) -> heatmap.Panel:
    """A heatmap that buckets the values of many series (Grafana's "calculate from data")."""
    buckets = (
        cb.HeatmapCalculationBucketConfig().mode(cm.HeatmapCalculationMode.SIZE).value(bucket_size)
    )
    return (
        heatmap.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .thresholds(_thresholds(steps))
        .targets(_targets(queries))
        .calculate(True)
        .calculation(cb.HeatmapCalculationOptions().y_buckets(buckets))
        .y_axis(heatmap.YAxisConfig().unit(unit).min(0))
        .color(
            heatmap.HeatmapColorOptions()
            .mode(hm.HeatmapColorMode.SCHEME)
            .scheme("Oranges")
            .fill("dark-orange")
            .scale(hm.HeatmapColorScale.EXPONENTIAL)
            .exponent(0.5)
            .steps(64)
        )
        .span(width)
        .height(height)
    )


def build_dashboard(
    name: str,
    description: str,
    variables: Sequence[Builder[dm.VariableModel]],
    rows: Sequence[Row],
) -> db.Dashboard:
    """A dashboard with rows of panels, ids numbered in order, and a uid from its name."""
    dash = (
        db.Dashboard(name)
        .uid(uid_for(name))
        .description(description)
        .tags(["gpumetrics", "gpu", "llm-inference"])
        .editable()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .time("now-3h", "now")
        .refresh("30s")
        .timezone("browser")
        .variables(list(variables))
    )
    next_id = 1
    for row in rows:
        row_builder = db.Row(row.title).id(next_id)
        next_id += 1
        if row.collapsed:
            for panel in _laid_out(row.panels, _bottom(dash) + 1):
                row_builder = row_builder.with_panel(panel.id(next_id))
                next_id += 1
            dash = dash.with_row(row_builder)
            continue
        dash = dash.with_row(row_builder)
        for panel in row.panels:
            dash = dash.with_panel(panel.id(next_id))
            next_id += 1
    return dash


def _bottom(dash: db.Dashboard) -> int:
    """The first free grid line below the dashboard's panels so far."""
    panels = dash.build().panels or []
    lines = [p.grid_pos.y + p.grid_pos.h for p in panels if p.grid_pos is not None]
    return max(lines, default=0)


def _laid_out(panels: Sequence[PanelBuilder], top: int) -> list[PanelBuilder]:
    """Panels of a collapsed row with their grid positions set (the dashboard builder places
    only top-level panels): left to right from line `top` (just below the row), wrapping at
    24 columns, as Grafana lays them out when the row is opened."""
    x, y, line_height = 0, top, 0
    out: list[PanelBuilder] = []
    for panel in panels:
        grid = panel.build().grid_pos
        width = grid.w if grid is not None else 12
        height = grid.h if grid is not None else 8
        if x + width > 24:
            x, y, line_height = 0, y + line_height, 0
        out.append(panel.grid_pos(dm.GridPos(h=height, w=width, x=x, y=y)))
        x += width
        line_height = max(line_height, height)
    return out


def encode(dashboard: db.Dashboard) -> str:
    """Deterministic JSON text of a dashboard, newline-terminated."""
    return JSONEncoder(sort_keys=True, indent=2).encode(dashboard.build()) + "\n"
