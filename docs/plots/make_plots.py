#!/usr/bin/env python3
"""Draws the plots of docs/performance.md from the recorded figures in figures.json.

Pure Python 3 (standard library only) writing SVG, so it runs anywhere:

    python3 docs/plots/make_plots.py            # writes docs/plots/*.svg
    python3 docs/plots/make_plots.py --check    # exits 1 if a committed SVG is out of date

The numbers are not measured here: figures.json holds the figures docs/performance.md records
(and, for Apache Flume and Spark, published or anchor figures with their source). Change a
figure there, rerun, commit both. The output is deterministic (same input, same bytes).
"""

import json
import math
import os
import sys
from xml.sax.saxutils import escape

HERE = os.path.dirname(os.path.abspath(__file__))
COLORS = {"sluicegate": "#2563eb", "flume": "#9ca3af", "spark": "#f97316", None: "#6b7280"}
FONT = 'font-family="system-ui, -apple-system, Segoe UI, sans-serif"'


def fmt(v):
    if v >= 100 or v == int(v):
        return f"{v:,.0f}"
    return f"{v:g}"


class Svg:
    def __init__(self, width, height):
        self.w, self.h, self.parts = width, height, []

    def add(self, s):
        self.parts.append(s)

    def text(self, x, y, s, size=12, anchor="start", color="#1f2937", weight="normal"):
        self.add(
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'fill="{color}" font-weight="{weight}">{escape(str(s))}</text>'
        )

    def line(self, x1, y1, x2, y2, color="#e5e7eb", width=1, dash=None):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(
            f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
            f'stroke="{color}" stroke-width="{width}"{d}/>'
        )

    def rect(self, x, y, w, h, color):
        self.add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0.5):.1f}" height="{h:.1f}" fill="{color}"/>')

    def circle(self, x, y, r, color):
        self.add(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{color}" fill-opacity="0.8"/>')

    def render(self):
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.w}" height="{self.h}" '
            f'viewBox="0 0 {self.w} {self.h}" {FONT}>\n'
            f'<rect width="{self.w}" height="{self.h}" fill="#ffffff"/>\n'
        )
        return head + "\n".join(self.parts) + "\n</svg>\n"


class Axis:
    """Maps values to x pixels, linear or log10, with tick values."""

    def __init__(self, lo, hi, x0, x1, log=False):
        self.log, self.x0, self.x1 = log, x0, x1
        if log:
            self.lo = 10 ** math.floor(math.log10(lo))
            self.hi = 10 ** math.ceil(math.log10(hi))
        else:
            step = nice_step(hi / 5)
            self.lo, self.hi = 0, step * math.ceil(hi / step)

    def x(self, v):
        if self.log:
            f = (math.log10(v) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        else:
            f = (v - self.lo) / (self.hi - self.lo)
        return self.x0 + f * (self.x1 - self.x0)

    def ticks(self):
        if self.log:
            t, out = self.lo, []
            while t <= self.hi * 1.0001:
                out.append(t)
                t *= 10
            return out
        step = nice_step(self.hi / 5)
        return [i * step for i in range(int(round(self.hi / step)) + 1)]


def nice_step(raw):
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def frame(svg, axis, top, bottom, unit):
    for t in axis.ticks():
        x = axis.x(t)
        svg.line(x, top, x, bottom)
        svg.text(x, bottom + 14, fmt(t), size=10, anchor="middle", color="#6b7280")
    svg.text((axis.x0 + axis.x1) / 2, bottom + 30, unit + (" (log scale)" if axis.log else ""),
             size=11, anchor="middle", color="#6b7280")


def legend(svg, x, y, items):
    for label, color in items:
        svg.rect(x, y - 9, 10, 10, color)
        svg.text(x + 14, y, label, size=11, color="#374151")
        x += 14 + 7 * len(label) + 18


def hbars(title, unit, bars, log=False, note=None, legend_items=None):
    """Horizontal bars, one per {label, value, who}."""
    label_w, row, top = 330, 26, 52
    width, height = 820, top + row * len(bars) + 70 + (16 if note else 0)
    svg = Svg(width, height)
    svg.text(16, 24, title, size=15, weight="600")
    if legend_items:
        legend(svg, 16, 42, legend_items)
    values = [b["value"] for b in bars]
    axis = Axis(min(values), max(values), label_w, width - 70, log=log)
    bottom = top + row * len(bars)
    frame(svg, axis, top - 4, bottom, unit)
    for i, b in enumerate(bars):
        y = top + i * row
        svg.text(label_w - 8, y + 15, b["label"], size=12, anchor="end")
        x0 = axis.x(axis.lo) if not log else axis.x0
        svg.rect(x0, y + 4, axis.x(b["value"]) - x0, row - 9, COLORS.get(b.get("who")))
        svg.text(axis.x(b["value"]) + 5, y + 15, fmt(b["value"]), size=11, color="#374151")
    if note:
        svg.text(16, height - 10, note, size=10, color="#6b7280")
    return svg.render()


def latency(spec):
    series = spec["series"]
    label_w, row, top = 330, 36, 56
    width, height = 820, top + row * len(series) + 60
    svg = Svg(width, height)
    svg.text(16, 24, spec["title"], size=15, weight="600")
    marks = {"p50": "#2563eb", "p99": "#f97316", "max": "#dc2626"}
    legend(svg, 16, 42, [(k, c) for k, c in marks.items()])
    vals = [v for s in series for v in s["points"].values()]
    axis = Axis(min(vals), max(vals), label_w, width - 40, log=True)
    bottom = top + row * len(series)
    frame(svg, axis, top - 4, bottom, spec["unit"])
    for i, s in enumerate(series):
        y = top + i * row + row / 2
        svg.text(label_w - 8, y + 4, s["label"], size=12, anchor="end")
        pts = s["points"]
        xs = [axis.x(v) for v in pts.values()]
        svg.line(min(xs), y, max(xs), y, color="#9ca3af", width=2)
        for k, v in pts.items():
            svg.circle(axis.x(v), y, 5, marks[k])
            # max below the line, so it does not collide with a close p99
            dy = 17 if k == "max" else -8
            svg.text(axis.x(v), y + dy, fmt(v), size=10, anchor="middle", color="#374151")
    return svg.render()


def relay(spec):
    groups = spec["groups"]
    label_w, row, top = 260, 34, 52
    width, height = 820, top + row * len(groups) + 70
    svg = Svg(width, height)
    svg.text(16, 24, spec["title"], size=15, weight="600")
    legend(svg, 16, 42, [("one run", COLORS["sluicegate"]), ("median", "#111827"),
                         ("target " + fmt(spec["target"]) + " k", "#dc2626")])
    allv = [v for g in groups for v in g["values"]] + [spec["target"]]
    axis = Axis(0, max(allv), label_w, width - 170)
    bottom = top + row * len(groups)
    frame(svg, axis, top - 4, bottom, spec["unit"])
    svg.line(axis.x(spec["target"]), top - 4, axis.x(spec["target"]), bottom, color="#dc2626",
             width=1.5, dash="4 3")
    for i, g in enumerate(groups):
        y = top + i * row + row / 2
        svg.text(label_w - 8, y + 4, g["label"], size=12, anchor="end")
        vs = sorted(g["values"])
        for v in vs:
            svg.circle(axis.x(v), y, 4.5, COLORS["sluicegate"])
        n = len(vs)
        med = vs[n // 2] if n % 2 else (vs[n // 2 - 1] + vs[n // 2]) / 2
        svg.line(axis.x(med), y - 10, axis.x(med), y + 10, color="#111827", width=2)
        svg.text(axis.x(max(vs)) + 8, y + 4, f"median {fmt(med)} ({n} runs)", size=10,
                 color="#374151")
    return svg.render()


def one_batch(spec):
    bars = spec["bars"]
    label_w, row, top = 330, 30, 52
    width, height = 820, top + row * len(bars) + 70
    svg = Svg(width, height)
    svg.text(16, 24, spec["title"], size=15, weight="600")
    legend(svg, 16, 42, [("sluicegate", COLORS["sluicegate"]), ("Apache Spark 3.5.9", COLORS["spark"])])
    axis = Axis(0, max(max(b["values"]) for b in bars), label_w, width - 110)
    bottom = top + row * len(bars)
    frame(svg, axis, top - 4, bottom, spec["unit"])
    for i, b in enumerate(bars):
        y = top + i * row
        lo, med, hi = sorted(b["values"])
        svg.text(label_w - 8, y + 18, b["label"], size=12, anchor="end")
        svg.rect(axis.x(0), y + 6, axis.x(med) - axis.x(0), row - 11, COLORS[b["who"]])
        svg.line(axis.x(lo), y + row / 2, axis.x(hi), y + row / 2, color="#111827", width=1.5)
        svg.line(axis.x(lo), y + 9, axis.x(lo), y + row - 8, color="#111827", width=1.5)
        svg.line(axis.x(hi), y + 9, axis.x(hi), y + row - 8, color="#111827", width=1.5)
        svg.text(axis.x(hi) + 6, y + 18, f"{fmt(med)} ms, peak {b['memory']}", size=10,
                 color="#374151")
    return svg.render()


def build(figures):
    ingest = figures["durable_ingest"]
    pvs = figures["pipeline_vs_spark"]
    return {
        "durable_ingest.svg": hbars(
            ingest["title"], ingest["unit"], ingest["bars"], log=True,
            note="sluicegate: measured on this project's 2-vCPU VM. Flume: published figures "
                 "(other hardware, 2012-2019; sources in figures.json), not measured here.",
            legend_items=[("sluicegate (measured here)", COLORS["sluicegate"]),
                          ("Apache Flume (published)", COLORS["flume"])]),
        "latency.svg": latency(figures["latency"]),
        "relay.svg": relay(figures["relay"]),
        "pipeline_sustained.svg": hbars(
            pvs["sustained"]["title"], pvs["sustained"]["unit"], pvs["sustained"]["bars"],
            legend_items=[("sluicegate", COLORS["sluicegate"]),
                          ("Apache Spark 3.5.9", COLORS["spark"])]),
        "pipeline_one_batch.svg": one_batch(pvs["one_batch"]),
    }


def main():
    with open(os.path.join(HERE, "figures.json"), encoding="utf-8") as f:
        figures = json.load(f)
    check = "--check" in sys.argv[1:]
    stale = []
    for name, text in build(figures).items():
        path = os.path.join(HERE, name)
        if check:
            try:
                with open(path, encoding="utf-8") as f:
                    if f.read() != text:
                        stale.append(name)
            except FileNotFoundError:
                stale.append(name)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            print(f"wrote {os.path.relpath(path)}")
    if stale:
        print("out of date (run python3 docs/plots/make_plots.py): " + ", ".join(stale))
        sys.exit(1)


if __name__ == "__main__":
    main()
