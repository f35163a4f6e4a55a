"""Draws a Grafana dashboard from Prometheus data into a PNG, for docs where no Grafana runs (it is not packaged
here): every panel's PromQL is evaluated over a time range through Prometheus's HTTP API (query_range) and drawn
with matplotlib in the dashboard's own grid (gridPos), with its title, unit, thresholds and legend.

    # a bench run: a real Prometheus (Debian package `prometheus`) scrapes the bench's stack every second
    python deploy/grafana/render.py --bench d,e,g,b --out docs/overview.png        # what `make dashboard-png` runs
    # or a Prometheus that already holds the data (e.g. docker-compose's, http://localhost:9090)
    python deploy/grafana/render.py --prometheus http://localhost:9090 --since 15m --out overview.png

`--bench` starts `python -m bench --only <scenarios>` (bench/README.md), finds the service processes the bench
started (`uvicorn <package>.app:create_app --port N`, children of the bench process) and gives them to
Prometheus through a file_sd targets file as job `plataforma` with a `service` label, as the deployments do;
the picture covers the bench's run. `make test-observability` also uses `render_png` (OVERVIEW_PNG=...).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib.dates as mdates
from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, MaxNLocator

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
# Grafana's dark theme and its classic palette.
BACKGROUND, PANEL, BORDER, TEXT, MUTED, GRID = "#111217", "#181b1f", "#2c3235", "#ccccdc", "#8e8e8e", "#23272c"
PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#705da0", "#37872d",
           "#fade2a", "#ff9830", "#c4162a", "#1f60c4", "#8f3bb8", "#96d98d"]
NAMED = {"green": "#73bf69", "yellow": "#fade2a", "red": "#f2495c", "orange": "#ff9830", "blue": "#5794f2"}
COLUMN_IN, ROW_IN = 0.62, 0.34  # inches per Grafana grid unit (24 columns)
LEGEND_MAX = 12  # entries shown per panel; the rest are counted


# ----------------------------------------------------------------------------- data
def substitute(expr: str, rate_interval: str) -> str:
    """The dashboard's variables as "All" selects them."""
    for name, value in {'"$service"': '".*"', '"$instance"': '".*"', "$__rate_interval": rate_interval}.items():
        expr = expr.replace(name, value)
    return expr


def query_range(prometheus: str, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query_range?{params}", timeout=60) as resp:
        body = json.load(resp)
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body}")
    return body["data"]["result"]


def legend(template: str | None, labels: dict[str, str]) -> str:
    out = template or ",".join(f"{k}={v}" for k, v in labels.items() if k != "__name__") or "value"
    for key, value in labels.items():
        out = out.replace("{{" + key + "}}", value)
    return out


Series = list[tuple[str, list[float], list[float]]]  # (legend, times, values)


def panel_series(panel: dict[str, Any], prometheus: str, start: float, end: float, step: float,
                 rate_interval: str) -> Series:
    series: Series = []
    for target in panel.get("targets", []):
        for result in query_range(prometheus, substitute(target["expr"], rate_interval), start, end, step):
            points = [(float(t), float(v)) for t, v in result["values"]]
            points = [(t, v) for t, v in points if math.isfinite(v)]
            if points:
                times, values = zip(*points, strict=True)
                series.append((legend(target.get("legendFormat"), result["metric"]), list(times), list(values)))
    return series


# ----------------------------------------------------------------------------- drawing
def fmt(value: float, unit: str) -> str:
    if unit == "percentunit":
        return f"{value * 100:.3g}%"
    if unit == "s":
        if value == 0:
            return "0 s"
        return f"{value * 1000:.3g} ms" if abs(value) < 1 else f"{value:.3g} s"
    suffix = {"reqps": " req/s", "ops": "/s"}.get(unit, "")
    if abs(value) >= 1000:
        return f"{value / 1000:.3g}k{suffix}"
    return f"{value:.3g}{suffix}"


def threshold_color(panel: dict[str, Any], value: float | None) -> str:
    color = NAMED["green"]
    for step in panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", []):
        if step.get("value") is None or (value is not None and value >= step["value"]):
            color = NAMED.get(step["color"], step["color"])
    return color


def frame(fig: Figure, rect: tuple[float, float, float, float], title: str) -> None:
    """A panel's box and title; rect is (left, bottom, width, height) in figure fractions."""
    box = fig.add_axes(rect)
    box.set_facecolor(PANEL)
    box.set_xticks([])
    box.set_yticks([])
    for spine in box.spines.values():
        spine.set_color(BORDER)
    width_in, height_in = rect[2] * fig.get_size_inches()[0], rect[3] * fig.get_size_inches()[1]
    box.text(0.1 / width_in, 1 - 0.08 / height_in, title, transform=box.transAxes, color=TEXT, fontsize=9.5,
             fontweight="bold", va="top", ha="left")


def draw_stat(fig: Figure, rect: tuple[float, float, float, float], panel: dict[str, Any], series: Series,
              unit: str) -> None:
    totals: dict[float, float] = {}
    for _, times, values in series:
        for t, v in zip(times, values, strict=True):
            totals[t] = totals.get(t, 0.0) + v
    last = totals[max(totals)] if totals else None
    left, bottom, width, height = rect
    if len(totals) > 1:  # Grafana's stat panel draws the series faintly behind the number
        spark = fig.add_axes((left + 0.002, bottom + 0.002, width - 0.004, height * 0.35))
        times = sorted(totals)
        spark.fill_between([datetime.fromtimestamp(t, UTC) for t in times], [totals[t] for t in times],
                           color=threshold_color(panel, last), alpha=0.18, linewidth=0)
        spark.set_axis_off()
        spark.set_ylim(bottom=0)
    text = fmt(last, unit) if last is not None else "No data"
    fig.text(left + width / 2, bottom + height * 0.42, text, color=threshold_color(panel, last) if totals else MUTED,
             fontsize=24 if totals else 12, fontweight="bold", ha="center", va="center")


def gaps_broken(times: list[float], values: list[float]) -> tuple[list[float], list[float]]:
    """A NaN where samples are missing (no requests, say), so the line stops there as in Grafana instead of
    being drawn straight across."""
    if len(times) < 3:
        return times, values
    step = sorted(b - a for a, b in zip(times, times[1:], strict=False))[len(times) // 2 - 1]
    xs, ys = [times[0]], [values[0]]
    for (t0, _), (t1, v1) in zip(zip(times, values, strict=True), zip(times[1:], values[1:], strict=True),
                                 strict=False):
        if t1 - t0 > 1.5 * step:
            xs.append((t0 + t1) / 2)
            ys.append(math.nan)
        xs.append(t1)
        ys.append(v1)
    return xs, ys


def draw_timeseries(fig: Figure, rect: tuple[float, float, float, float], series: Series, unit: str,
                    start: float, end: float) -> None:
    left, bottom, width, height = rect
    fig_w, fig_h = fig.get_size_inches()
    if not series:
        fig.text(left + width / 2, bottom + height / 2, "No data", color=MUTED, fontsize=11, ha="center",
                 va="center")
        return
    # Legend entries, most prominent first (Grafana's order is arbitrary; this keeps the picture readable).
    series = sorted(series, key=lambda s: -max(s[2]))
    columns = max(1, int(width * fig_w / 2.3))
    # As many legend rows as leave the plot at least 0.6 in tall; what does not fit is counted.
    room = max(1, int((height * fig_h - 0.30 - 0.30 - 0.6) / 0.15))
    limit = min(LEGEND_MAX, room * columns)
    if len(series) > limit:
        limit -= 1  # the "+ N more" entry takes a place
    shown = series[:limit]
    legend_rows = math.ceil((len(shown) + (len(series) > limit)) / columns)
    pad_left, pad_top = 0.62 / fig_w, 0.30 / fig_h
    pad_bottom = (0.30 + 0.15 * legend_rows) / fig_h
    ax = fig.add_axes((left + pad_left, bottom + pad_bottom, width - pad_left - 0.08 / fig_w,
                       height - pad_top - pad_bottom))
    ax.set_facecolor(PANEL)
    for i, (_, times, values) in enumerate(series):
        xs, ys = gaps_broken(times, values)
        ax.plot([datetime.fromtimestamp(t, UTC) for t in xs], ys, color=PALETTE[i % len(PALETTE)], linewidth=1.2)
    ax.set_xlim(datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC))
    ax.set_ylim(bottom=0, top=max(max(v) for _, _, v in series) * 1.1 or 1.0)
    ax.yaxis.set_major_locator(MaxNLocator(4))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v, unit)))
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=7, tz=UTC))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=UTC))
    ax.tick_params(colors=MUTED, labelsize=7, length=0)
    ax.grid(color=GRID, linewidth=0.8)
    for spine in ax.spines.values():
        spine.set_visible(False)
    column_w = (width - 0.2 / fig_w) / columns
    fits = max(8, int((column_w * fig_w - 0.3) * 15.5))  # characters of 6.8 pt text in one legend column
    labels = [name if len(name) <= fits else name[:fits - 1] + "…" for name, _, _ in shown]
    if len(series) > limit:
        labels.append(f"+ {len(series) - limit} more")
    for i, label in enumerate(labels):
        x = left + 0.1 / fig_w + (i % columns) * column_w
        y = bottom + (0.12 + 0.15 * (legend_rows - 1 - i // columns)) / fig_h
        more = i >= len(shown)
        if not more:
            fig.patches.append(Rectangle((x, y + 0.035 / fig_h), 0.14 / fig_w, 0.035 / fig_h,
                                             transform=fig.transFigure, color=PALETTE[i % len(PALETTE)]))
        fig.text(x + (0 if more else 0.19 / fig_w), y, label, color=MUTED if more else TEXT, fontsize=6.8,
                 va="bottom", ha="left")


def draw(dashboard: dict[str, Any], data: list[tuple[dict[str, Any], Series]], start: float, end: float,
         out: Path, subtitle: str) -> Path:
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard["panels"])
    header_in = 0.55
    fig_w, fig_h = 24 * COLUMN_IN, rows * ROW_IN + header_in
    fig = Figure(figsize=(fig_w, fig_h), dpi=110, facecolor=BACKGROUND)
    fig.text(0.1 / fig_w, 1 - 0.22 / fig_h, dashboard["title"], color=TEXT, fontsize=14, fontweight="bold",
             va="center")
    fig.text(1 - 0.1 / fig_w, 1 - 0.22 / fig_h, subtitle, color=MUTED, fontsize=8, va="center", ha="right")
    gap_w, gap_h = 0.04 / fig_w, 0.04 / fig_h
    for panel, series in data:
        g = panel["gridPos"]
        left, top = g["x"] * COLUMN_IN / fig_w, 1 - (header_in + g["y"] * ROW_IN) / fig_h
        width, height = g["w"] * COLUMN_IN / fig_w, g["h"] * ROW_IN / fig_h
        if panel["type"] == "row":
            fig.text(left + 0.05 / fig_w, top - height / 2, panel["title"], color=TEXT, fontsize=11.5,
                     fontweight="bold", va="center")
            continue
        rect = (left + gap_w, top - height + gap_h, width - 2 * gap_w, height - 2 * gap_h)
        frame(fig, rect, panel["title"])
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        if panel["type"] == "stat":
            draw_stat(fig, rect, panel, series, unit)
        else:
            draw_timeseries(fig, rect, series, unit, start, end)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, facecolor=BACKGROUND)
    return out


def render_png(dashboard: dict[str, Any], prometheus: str, start: float, end: float, out: Path, *,
               rate_interval: str = "1m", subtitle: str = "") -> Path:
    """Evaluate every panel over [start, end] and draw the dashboard into `out`."""
    step = max(1.0, (end - start) / 240)
    data = [(p, [] if p["type"] == "row" else panel_series(p, prometheus, start, end, step, rate_interval))
            for p in dashboard["panels"]]
    stamp = f"{datetime.fromtimestamp(start, UTC):%Y-%m-%d %H:%M:%S} – {datetime.fromtimestamp(end, UTC):%H:%M:%S} UTC"
    return draw(dashboard, data, start, end, out, f"{subtitle} · {stamp}" if subtitle else stamp)


# ----------------------------------------------------------------------------- a bench run, scraped
PACKAGES = {"auth": "auth", "tenants": "tenants", "support": "support", "leads": "leads",
            "conversations": "conversations", "billing": "billing", "webhook_dispatcher": "webhook-dispatcher"}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def prometheus_server(workdir: Path, targets_file: Path, scrape_interval: str) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        sys.exit("prometheus is not installed: apt-get install prometheus (make dashboard-png does it)")
    config = {"global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
              "scrape_configs": [{"job_name": "plataforma",
                                  "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "1s"}]}]}
    (workdir / "prometheus.yml").write_text(json.dumps(config))  # YAML is a superset of JSON
    port = free_port()
    log = (workdir / "prometheus.log").open("w")
    proc = subprocess.Popen([binary, f"--config.file={workdir / 'prometheus.yml'}",
                             f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError((workdir / "prometheus.log").read_text()[-2000:])
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def service_targets(bench_pid: int) -> list[dict[str, Any]]:
    """The bench's service processes: `python -m uvicorn <package>.app:create_app ... --port N`."""
    import psutil

    targets = []
    try:
        children = psutil.Process(bench_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    for child in children:
        try:
            argv = child.cmdline()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        app = next((a for a in argv if a.endswith(".app:create_app")), None)
        if app and "--port" in argv and app.split(".")[0] in PACKAGES:
            port = argv[argv.index("--port") + 1]
            targets.append({"targets": [f"127.0.0.1:{port}"], "labels": {"service": PACKAGES[app.split(".")[0]]}})
    return sorted(targets, key=lambda t: t["labels"]["service"])


def bench_run(scenarios: str, bench_args: list[str], out: Path, dashboard: dict[str, Any]) -> Path:
    with tempfile.TemporaryDirectory(prefix="plataforma-render-") as tmp:
        workdir = Path(tmp)
        targets_file = workdir / "targets.json"
        targets_file.write_text("[]")
        with prometheus_server(workdir, targets_file, "1s") as prometheus:
            argv = [sys.executable, "-m", "bench", "--only", scenarios, "--json", str(workdir / "bench.json"),
                    *bench_args]
            print("+", " ".join(argv), flush=True)
            start = time.time()
            bench = subprocess.Popen(argv, cwd=ROOT)
            known: list[dict[str, Any]] = []
            while bench.poll() is None:
                found = service_targets(bench.pid)
                # Keep services that stopped (billing after (s)): their samples stay in Prometheus anyway.
                merged = {t["labels"]["service"]: t for t in known} | {t["labels"]["service"]: t for t in found}
                if sorted(merged) != sorted(t["labels"]["service"] for t in known) or found != known:
                    known = sorted(merged.values(), key=lambda t: t["labels"]["service"])
                    targets_file.write_text(json.dumps(known))
                time.sleep(0.5)
            end = time.time()
            if bench.returncode != 0:
                sys.exit(f"the bench failed (exit {bench.returncode})")
            time.sleep(2)  # the last scrapes
            start, end = while_up(prometheus, start, time.time())
            services = ", ".join(t["labels"]["service"] for t in known)
            return render_png(dashboard, prometheus, start, end, out, rate_interval="10s",
                              subtitle=f"bench --only {scenarios} ({services}), Prometheus scraping every 1 s")


def while_up(prometheus: str, start: float, end: float) -> tuple[float, float]:
    """The part of [start, end] in which the bench's services were all up: from the first scrape to the last
    one before the bench stopped its stack (else the stat panels would show a stopped platform)."""
    [up] = query_range(prometheus, 'sum(up{job="plataforma"})', start, end, 1.0) or [{"values": []}]
    points = [(float(t), float(v)) for t, v in up["values"]]
    if not points:
        return start, end
    top = max(v for _, v in points)
    return points[0][0] - 5, max(t for t, v in points if v == top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--dashboard", type=Path, default=HERE / "dashboards/overview.json")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--bench", metavar="SCENARIOS", help="run `python -m bench --only SCENARIOS`, scraped")
    source.add_argument("--prometheus", metavar="URL", help="a Prometheus that already holds the data")
    parser.add_argument("--since", default="15m", help="with --prometheus: how far back (e.g. 15m, 2h)")
    parser.add_argument("--rate-interval", default="1m", help="with --prometheus: $__rate_interval")
    args, rest = parser.parse_known_args(argv)
    dashboard = json.loads(args.dashboard.read_text())
    if args.bench:
        path = bench_run(args.bench, rest, args.out, dashboard)
    else:
        if rest:
            parser.error(f"unknown arguments: {rest}")
        seconds = float(args.since[:-1]) * {"s": 1, "m": 60, "h": 3600}[args.since[-1]]
        end = time.time()
        path = render_png(dashboard, args.prometheus.rstrip("/"), end - seconds, end, args.out,
                          rate_interval=args.rate_interval)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
