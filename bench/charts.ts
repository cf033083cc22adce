// SVG charts made by code, no dependencies: small multiples of line charts (throughput against
// load) and of percentile ranges (latency distribution). Text is escaped; sizes are fixed so the
// files diff well.
const palette = ["#2456d3", "#d9730d", "#1b7f3b", "#9b3bb5"];
const esc = (s: string) =>
  s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c] ?? c);

export type Series = { name: string; values: Array<number | undefined> };
export type Panel = { title: string; categories: string[]; series: Series[] };

const panelWidth = 300;
const panelHeight = 220;
const margin = { top: 66, right: 16, bottom: 56, left: 64 };

function niceMax(value: number): number {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function frame(title: string, panels: number, legend: string[], body: string, yLabel: string): string {
  const width = margin.left + panels * (panelWidth + margin.right) + 8;
  const height = margin.top + panelHeight + margin.bottom + 8;
  const legendItems = legend
    .map(
      (name, i) =>
        `<rect x="${margin.left + i * 210}" y="26" width="12" height="12" fill="${palette[i % palette.length]}"/><text x="${margin.left + i * 210 + 18}" y="36">${esc(name)}</text>`,
    )
    .join("");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12" role="img" aria-label="${esc(title)}">
<title>${esc(title)}</title>
<rect width="100%" height="100%" fill="#fff"/>
<text x="${margin.left}" y="16" font-size="14" font-weight="600">${esc(title)}</text>
${legendItems}
<text transform="translate(14 ${margin.top + panelHeight / 2}) rotate(-90)" text-anchor="middle" fill="#5b6478">${esc(yLabel)}</text>
${body}
</svg>
`;
}

function axes(x0: number, title: string, categories: string[], yMax: number, xLabel: string): string {
  const y0 = margin.top + panelHeight;
  const ticks = [0, 0.25, 0.5, 0.75, 1]
    .map((f) => {
      const y = y0 - f * panelHeight;
      const value = yMax * f;
      const label = value >= 100 ? Math.round(value).toLocaleString("en") : Number(value.toPrecision(3)).toString();
      return `<line x1="${x0}" x2="${x0 + panelWidth}" y1="${y}" y2="${y}" stroke="#e6e9f0"/><text x="${x0 - 6}" y="${y + 4}" text-anchor="end" fill="#5b6478">${label}</text>`;
    })
    .join("");
  const step = panelWidth / categories.length;
  const xTicks = categories
    .map((c, i) => `<text x="${x0 + step * (i + 0.5)}" y="${y0 + 18}" text-anchor="middle">${esc(c)}</text>`)
    .join("");
  return `${ticks}<line x1="${x0}" x2="${x0 + panelWidth}" y1="${y0}" y2="${y0}" stroke="#1d2433"/>${xTicks}
<text x="${x0 + panelWidth / 2}" y="${y0 + 40}" text-anchor="middle" fill="#5b6478">${esc(xLabel)}</text>
<text x="${x0 + panelWidth / 2}" y="${margin.top - 6}" text-anchor="middle" font-weight="600">${esc(title)}</text>`;
}

/** Lines of a value per category (e.g. calls/s per concurrency), one panel per request size. */
export function lineCharts(title: string, yLabel: string, xLabel: string, panels: Panel[]): string {
  const names = [...new Set(panels.flatMap((p) => p.series.map((s) => s.name)))];
  const body = panels
    .map((panel, p) => {
      const x0 = margin.left + p * (panelWidth + margin.right);
      const yMax = niceMax(Math.max(...panel.series.flatMap((s) => s.values.filter((v) => v !== undefined))));
      const step = panelWidth / panel.categories.length;
      const lines = panel.series
        .map((s) => {
          const color = palette[names.indexOf(s.name) % palette.length];
          const points = s.values
            .map((v, i) =>
              v === undefined
                ? undefined
                : ([x0 + step * (i + 0.5), margin.top + panelHeight - (v / yMax) * panelHeight, v] as const),
            )
            .filter((pt) => pt !== undefined);
          const path = points.map(([x, y], i) => `${i === 0 ? "M" : "L"}${x.toFixed(1)},${y.toFixed(1)}`).join("");
          const dots = points
            .map(
              ([x, y, v]) =>
                `<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="3.5" fill="${color}"><title>${esc(s.name)}: ${v}</title></circle>`,
            )
            .join("");
          return `<path d="${path}" fill="none" stroke="${color}" stroke-width="2"/>${dots}`;
        })
        .join("");
      return axes(x0, panel.title, panel.categories, yMax, xLabel) + lines;
    })
    .join("\n");
  return frame(title, panels.length, names, body, yLabel);
}

export type Range = { name: string; low: number; mid: number; high: number };
export type RangePanel = { title: string; categories: string[]; ranges: Range[][] };

/** Per category and system: a bar from low to high (p50 to p99) with a mark at mid (p90). */
export function rangeCharts(title: string, yLabel: string, xLabel: string, panels: RangePanel[]): string {
  const names = [...new Set(panels.flatMap((p) => p.ranges.flat().map((r) => r.name)))];
  const body = panels
    .map((panel, p) => {
      const x0 = margin.left + p * (panelWidth + margin.right);
      const yMax = niceMax(Math.max(...panel.ranges.flat().map((r) => r.high)));
      const step = panelWidth / panel.categories.length;
      const y = (v: number) => margin.top + panelHeight - (v / yMax) * panelHeight;
      const bars = panel.ranges
        .map((group, i) =>
          group
            .map((r, j) => {
              const color = palette[names.indexOf(r.name) % palette.length];
              const width = Math.min(18, (step * 0.7) / group.length);
              const x = x0 + step * (i + 0.5) + (j - group.length / 2) * (width + 4) + 2;
              return `<rect x="${x.toFixed(1)}" y="${y(r.high).toFixed(1)}" width="${width.toFixed(1)}" height="${Math.max(1, y(r.low) - y(r.high)).toFixed(1)}" fill="${color}" fill-opacity="0.35" stroke="${color}"><title>${esc(r.name)}: p50 ${r.low}, p90 ${r.mid}, p99 ${r.high}</title></rect><line x1="${x.toFixed(1)}" x2="${(x + width).toFixed(1)}" y1="${y(r.mid).toFixed(1)}" y2="${y(r.mid).toFixed(1)}" stroke="${color}" stroke-width="2"/>`;
            })
            .join(""),
        )
        .join("");
      return axes(x0, panel.title, panel.categories, yMax, xLabel) + bars;
    })
    .join("\n");
  return frame(title, panels.length, names, body, yLabel);
}
