"""Draws a dashboard from Prometheus query results into a PNG, laid out as Grafana lays it out (gridPos), for
docs where no Grafana runs: each panel's queries go through Prometheus's HTTP API (query_range), lines are
drawn as SVG, and headless Chromium takes the screenshot.

    python deploy/grafana/render.py PROMETHEUS_URL START END OUT.png [dashboard.json]

Used by `make test-observability` after its workload (tests/deploy/test_observability.py).
"""

from __future__ import annotations

import html
import json
import math
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
COLUMN, ROW = 56, 34  # pixels per Grafana grid unit (24 columns)
COLORS = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#fade2a", "#96d98d"]
VARIABLES = {'"$service"': '".*"', '"$instance"': '".*"', "$__rate_interval": "1m"}


def substitute(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def query_range(prometheus: str, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode({"query": substitute(expr), "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query_range?{params}", timeout=30) as resp:
        body = json.load(resp)
    return body["data"]["result"]


def legend(template: str, labels: dict[str, str]) -> str:
    out = template or ",".join(f"{k}={v}" for k, v in labels.items())
    for key, value in labels.items():
        out = out.replace("{{" + key + "}}", value)
    return out


def fmt(value: float, unit: str) -> str:
    if unit == "percentunit":
        return f"{value * 100:.1f}%"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    suffix = {"reqps": " req/s", "ops": "/s"}.get(unit, "")
    return (f"{value / 1000:.1f}k" if abs(value) >= 1000 else f"{value:.3g}") + suffix


def panel_svg(panel: dict[str, Any], series: list[tuple[str, list[tuple[float, float]]]], w: int, h: int,
              start: float, end: float) -> str:
    unit = panel["fieldConfig"]["defaults"].get("unit", "")
    title = html.escape(panel["title"])
    out = [f'<rect width="{w}" height="{h}" rx="3" fill="#181b1f" stroke="#2c3235"/>',
           f'<text x="10" y="20" fill="#ccccdc" font-size="13" font-weight="600">{title}</text>']
    values = [v for _, points in series for _, v in points if math.isfinite(v)]
    if panel["type"] == "stat":
        last = [points[-1][1] for _, points in series if points]
        text = fmt(sum(last), unit) if last else "No data"
        steps = panel["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])
        color = "#73bf69"
        for step in steps:
            if step["value"] is None or (last and sum(last) >= step["value"]):
                color = {"green": "#73bf69", "yellow": "#fade2a", "red": "#f2495c", "orange": "#ff9830"}.get(
                    step["color"], step["color"])
        out.append(f'<text x="{w / 2}" y="{h / 2 + 18}" fill="{color}" font-size="34" font-weight="600" '
                   f'text-anchor="middle">{html.escape(text)}</text>')
        return "".join(out)
    if not values:
        out.append(f'<text x="{w / 2}" y="{h / 2}" fill="#8e8e8e" font-size="14" text-anchor="middle">No data</text>')
        return "".join(out)
    top = max(values) * 1.1 or 1.0
    left, right, upper, lower = 58, w - 10, 32, h - 40
    for i in range(5):
        y = lower - (lower - upper) * i / 4
        out.append(f'<line x1="{left}" x2="{right}" y1="{y}" y2="{y}" stroke="#2c3235"/>'
                   f'<text x="{left - 4}" y="{y + 4}" fill="#8e8e8e" font-size="10" text-anchor="end">'
                   f"{html.escape(fmt(top * i / 4, unit))}</text>")
    for i, (name, points) in enumerate(series[:9]):
        coords = " ".join(f"{left + (right - left) * (t - start) / (end - start):.1f},"
                          f"{lower - (lower - upper) * v / top:.1f}" for t, v in points if math.isfinite(v))
        color = COLORS[i % len(COLORS)]
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{coords}"/>')
        lx, ly = 10 + (i % 3) * (w - 20) / 3, h - 24 + (i // 3) * 11
        out.append(f'<rect x="{lx}" y="{ly - 7}" width="10" height="3" fill="{color}"/>'
                   f'<text x="{lx + 14}" y="{ly - 2}" fill="#ccccdc" font-size="9">{html.escape(name[:48])}</text>')
    return "".join(out)


def render_html(dashboard: dict[str, Any], prometheus: str, start: float, end: float) -> tuple[str, int, int]:
    step = max(5.0, (end - start) / 200)
    blocks, bottom = [], 0
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        x, y, w, h = grid["x"] * COLUMN, grid["y"] * ROW, grid["w"] * COLUMN, grid["h"] * ROW
        bottom = max(bottom, y + h)
        if panel["type"] == "row":
            blocks.append(f'<text x="{x + 4}" y="{y + 22}" fill="#ccccdc" font-size="15" font-weight="600">'
                          f'{html.escape(panel["title"])}</text>')
            continue
        series = []
        for target in panel.get("targets", []):
            for result in query_range(prometheus, target["expr"], start, end, step):
                points = [(float(t), float(v)) for t, v in result["values"]]
                series.append((legend(target.get("legendFormat", ""), result["metric"]), points))
        blocks.append(f'<g transform="translate({x + 2},{y + 2})">{panel_svg(panel, series, w - 4, h - 4, start, end)}</g>')
    width, height = 24 * COLUMN, bottom + 8
    title = html.escape(dashboard["title"])
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 30}" '
           f'font-family="Inter, Helvetica, Arial, sans-serif"><rect width="100%" height="100%" fill="#111217"/>'
           f'<text x="8" y="20" fill="#ccccdc" font-size="16" font-weight="600">{title}</text>'
           f'<g transform="translate(0,30)">{"".join(blocks)}</g></svg>')
    page = f"<!doctype html><html><body style='margin:0;background:#111217'>{svg}</body></html>"
    return page, width, height + 30


def render_png(dashboard: dict[str, Any], prometheus: str, start: float, end: float, out: Path) -> Path:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        raise RuntimeError("headless Chromium is needed (Debian package `chromium`)")
    page, width, height = render_html(dashboard, prometheus, start, end)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "dashboard.html"
        source.write_text(page)
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={tmp}/profile", f"--window-size={width},{height}",
                        f"--screenshot={out.resolve()}", source.as_uri()],
                       check=True, capture_output=True, timeout=120)
    return out


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    board = Path(sys.argv[5]) if len(sys.argv) == 6 else HERE / "dashboards/overview.json"
    print(render_png(json.loads(board.read_text()), sys.argv[1], float(sys.argv[2]), float(sys.argv[3]),
                     Path(sys.argv[4])))
