// headsetd board preview: reads a committed Grafana board, resolves its variables and runs every
// panel's queries against Prometheus as Grafana would, and draws each panel on its gridPos:
// timeseries with uPlot, stat, table and state-timeline as plain HTML.
//
// It resolves variables by the same rules as tests/grafana/live.py (label_values in order,
// All = allValue, a single value = the first option or var-<name> from the URL), so the
// screenshot shows what the tests checked. When done it sets document.title to
// "preview: done" (or "preview: error") and leaves a summary in window.previewReport:
// {panels: [{id, title, type, series, targets: {refId: series}}], errors: [...], variables}.
"use strict";

const params = new URLSearchParams(location.search);
const report = { dashboard: "", panels: [], errors: [], variables: {} };
window.previewReport = report;

const COLORS = {
  green: "#73bf69", red: "#f2495c", orange: "#ff9830", blue: "#5794f2", yellow: "#fade2a",
  purple: "#b877d9", text: "#ccccdc",
};
const PALETTE = ["#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9",
  "#705da0", "#508642", "#cca300", "#447ebc", "#c15c17"];
const GRID_UNIT = 30; // Grafana's grid row height in px
const GRID_GAP = 8;

function color(name) {
  return COLORS[name] || name || COLORS.text;
}

function fail(message) {
  report.errors.push(String(message));
  console.error(String(message));
}

async function getJSON(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

function seconds(duration) {
  const match = /^(\d+)(ms|s|m|h|d)$/.exec(duration);
  if (!match) throw new Error(`unsupported duration ${duration}`);
  return Number(match[1]) * { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 }[match[2]];
}

function parseTime(text, now) {
  if (text === "now") return now;
  const relative = /^now-(\w+)$/.exec(text);
  if (relative) return now - seconds(relative[1]);
  const epochMs = Number(text);
  if (Number.isFinite(epochMs)) return epochMs / 1000;
  throw new Error(`unsupported time ${text}`);
}

function substitute(expr, values) {
  return expr.replace(/\$(\w+)|\$\{(\w+)\}/g, (_all, plain, braced) => {
    const name = plain || braced;
    if (!(name in values)) throw new Error(`no value for $${name} in ${expr}`);
    return values[name];
  });
}

class Prometheus {
  constructor(url) {
    this.url = url.replace(/\/$/, "");
  }

  async get(path, query) {
    const body = await getJSON(`${this.url}${path}?${new URLSearchParams(query)}`);
    if (body.status !== "success") throw new Error(`${path}: ${JSON.stringify(body)}`);
    return body.data;
  }

  run(expr, target, range) {
    if (target.instant) {
      return this.get("/api/v1/query", { query: expr, time: range.end.toFixed(3) });
    }
    return this.get("/api/v1/query_range", {
      query: expr, start: range.start.toFixed(3), end: range.end.toFixed(3), step: range.step,
    });
  }
}

async function resolveVariables(model, prometheus, values) {
  for (const variable of model.templating.list) {
    if (variable.type !== "query") continue;
    const match = /^label_values\((.+),\s*(\w+)\)$/.exec(variable.query);
    if (!match) throw new Error(`variable ${variable.name}: unsupported query ${variable.query}`);
    const options = (await prometheus.get(`/api/v1/label/${match[2]}/values`, {
      "match[]": substitute(match[1], values),
    })).sort();
    const wanted = params.get(`var-${variable.name}`);
    if (wanted !== null && wanted !== "All") values[variable.name] = wanted;
    else if (variable.includeAll) values[variable.name] = variable.allValue;
    else values[variable.name] = options.length ? options[0] : "";
    report.variables[variable.name] = { value: values[variable.name], options };
  }
}

function legendOf(target, metric) {
  if (target.legendFormat) {
    return target.legendFormat.replace(/\{\{\s*(\w+)\s*\}\}/g, (_all, key) => metric[key] || "");
  }
  const labels = Object.entries(metric).filter(([key]) => key !== "__name__");
  return `${metric.__name__ || ""}{${labels.map(([k, v]) => `${k}="${v}"`).join(", ")}}`;
}

function formatValue(value, unit) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (unit === "percentunit") return `${(value * 100).toFixed(1)} %`;
  if (unit === "dB") return `${value.toFixed(1)} dB`;
  if (Number.isInteger(value)) return String(value);
  return Math.abs(value) >= 100 ? value.toFixed(0) : String(Number(value.toPrecision(3)));
}

// Grafana's display of one value: a value mapping first, then the threshold colour.
function display(value, fieldConfig) {
  const defaults = fieldConfig.defaults || {};
  for (const mapping of defaults.mappings || []) {
    const hit = mapping.type === "value" && mapping.options[String(value)];
    if (hit) return { text: hit.text, color: color(hit.color) };
  }
  let step = { color: "text" };
  for (const candidate of (defaults.thresholds || {}).steps || []) {
    if (candidate.value === null || value >= candidate.value) step = candidate;
  }
  return { text: formatValue(value, defaults.unit), color: color(step.color) };
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function drawStat(body, panel, frames) {
  const box = element("div", "stat");
  const all = frames.flatMap((frame) => frame.result.map((series) => ({ frame, series })));
  for (const { frame, series } of all) {
    const shown = display(Number(series.value[1]), panel.fieldConfig);
    const cell = element("div");
    const value = element("div", "value", shown.text);
    value.style.color = shown.color;
    cell.append(value);
    if (all.length > 1) cell.append(element("div", "name", legendOf(frame.target, series.metric)));
    box.append(cell);
  }
  body.append(box);
}

function tableRows(panel, frames) {
  // Grafana's table format: a column per label and "Value" (or "Value #<refId>" with several
  // queries); the merge transformation joins the queries' rows on equal label sets.
  const merged = new Map();
  const valueColumns = [];
  for (const frame of frames) {
    const column = frames.length > 1 ? `Value #${frame.target.refId}` : "Value";
    valueColumns.push(column);
    for (const series of frame.result) {
      const labels = { ...series.metric };
      const key = JSON.stringify(Object.entries(labels).sort());
      const row = merged.get(key) || { Time: series.value[0], ...labels };
      row[column] = Number(series.value[1]);
      merged.set(key, row);
    }
  }
  const rows = [...merged.values()];
  const labelColumns = [...new Set(rows.flatMap((row) => Object.keys(row)))]
    .filter((name) => name !== "Time" && !valueColumns.includes(name)).sort();
  let columns = ["Time", ...labelColumns, ...valueColumns].map((name) => ({ name, label: name }));
  for (const transformation of panel.transformations || []) {
    if (transformation.id !== "organize") continue;
    const exclude = transformation.options.excludeByName || {};
    const rename = transformation.options.renameByName || {};
    columns = columns.filter((c) => !exclude[c.name]).map((c) => ({ ...c, label: rename[c.name] || c.name }));
  }
  rows.sort((a, b) => JSON.stringify(columns.map((c) => a[c.name])).localeCompare(
    JSON.stringify(columns.map((c) => b[c.name]))));
  return { columns, rows, valueColumns };
}

function drawTable(body, panel, frames) {
  const { columns, rows, valueColumns } = tableRows(panel, frames);
  const table = element("table");
  const head = element("tr");
  for (const column of columns) head.append(element("th", "", column.label));
  table.append(head);
  for (const row of rows) {
    const tr = element("tr");
    for (const column of columns) {
      const raw = row[column.name];
      if (valueColumns.includes(column.name) && raw !== undefined) {
        const shown = display(raw, panel.fieldConfig);
        const td = element("td", "", shown.text);
        td.style.color = shown.color;
        tr.append(td);
      } else {
        tr.append(element("td", "", raw === undefined ? "" : String(raw)));
      }
    }
    table.append(tr);
  }
  body.append(table);
}

function seriesOf(frames) {
  return frames.flatMap((frame) => frame.result.map((series) => ({
    target: frame.target,
    label: legendOf(frame.target, series.metric),
    points: series.values.map(([t, v]) => [t, Number(v)]),
  })));
}

function legend(entries) {
  const box = element("div", "legend");
  for (const { label, stroke } of entries) {
    const item = element("span");
    const swatch = element("i");
    swatch.style.background = stroke;
    item.append(swatch, document.createTextNode(label));
    box.append(item);
  }
  return box;
}

function spansRef(panel) {
  // The override that draws a 0/1 query as shaded steps (call spans) on a hidden 0-1 axis.
  for (const override of (panel.fieldConfig || {}).overrides || []) {
    if (override.matcher.id === "byFrameRefID") return override.matcher.options;
  }
  return null;
}

function drawTimeseries(body, panel, frames, range) {
  const custom = (panel.fieldConfig.defaults || {}).custom || {};
  const unit = panel.fieldConfig.defaults.unit;
  const all = seriesOf(frames);
  const xs = [];
  for (let t = range.start; t <= range.end; t = xs.length * range.step + range.start) xs.push(t);
  const index = new Map(xs.map((t, i) => [t.toFixed(3), i]));
  const spans = spansRef(panel);
  const stacked = custom.stacking && custom.stacking.mode === "normal";
  const running = xs.map(() => 0);
  const data = [xs];
  const series = [{}];
  all.forEach((s, n) => {
    const ys = xs.map(() => null);
    for (const [t, v] of s.points) {
      const i = index.get(t.toFixed(3));
      if (i !== undefined) ys[i] = Number.isFinite(v) ? v : null; // NaN (0/0 between calls) is a gap
    }
    const isSpan = s.target.refId === spans;
    if (stacked && !isSpan) {
      ys.forEach((v, i) => { if (v !== null) { running[i] += v; ys[i] = running[i]; } });
    }
    const stroke = PALETTE[n % PALETTE.length];
    data.push(ys);
    series.push({
      label: s.label,
      stroke,
      width: 1,
      scale: isSpan ? "spans" : "y",
      fill: isSpan ? `${stroke}33` : custom.drawStyle === "bars" ? `${stroke}99` : `${stroke}1a`,
      paths: isSpan ? uPlot.paths.stepped({ align: 1 })
        : custom.drawStyle === "bars" ? uPlot.paths.bars({ size: [0.8, 40] }) : undefined,
      points: { show: false },
    });
  });
  const legendBox = legend(series.slice(1).map((s) => ({ label: s.label, stroke: s.stroke })));
  body.append(legendBox);
  const width = body.clientWidth - 16;
  const height = body.clientHeight - legendBox.offsetHeight - 6;
  const axis = { stroke: "#8e8e9a", grid: { stroke: "#2c3235", width: 1 }, ticks: { show: false } };
  const plot = new uPlot({
    width, height, series, legend: { show: false }, cursor: { show: false },
    scales: { x: { time: true }, spans: { range: [0, 1] } },
    axes: [axis, { ...axis, size: 56, values: (_u, ticks) => ticks.map((v) => formatValue(v, unit)) }],
  }, data);
  body.insertBefore(plot.root, legendBox);
}

function drawTimeline(body, panel, frames, range) {
  const box = element("div", "timeline");
  const span = range.end - range.start;
  for (const s of seriesOf(frames)) {
    const row = element("div", "row");
    const strip = element("div", "strip");
    let run = null;
    const flush = (until) => {
      if (!run) return;
      const shown = display(run.value, panel.fieldConfig);
      const piece = element("span", "", shown.text);
      piece.style.left = `${((run.from - range.start) / span) * 100}%`;
      piece.style.width = `${(Math.max(until - run.from, range.step) / span) * 100}%`;
      piece.style.background = shown.color;
      strip.append(piece);
      run = null;
    };
    let last = null;
    for (const [t, v] of s.points) {
      // A missing step (no sample: unknown or unplugged) ends the run, as Grafana shows a gap.
      if (run && (v !== run.value || t - last > range.step * 1.5)) flush(last + range.step);
      if (!run) run = { from: t, value: v };
      last = t;
    }
    if (run) flush(last + range.step);
    row.append(element("div", "label", s.label), strip);
    box.append(row);
  }
  body.append(box);
  const mappings = ((panel.fieldConfig.defaults || {}).mappings || [])[0];
  if (mappings) {
    body.append(legend(Object.values(mappings.options).map((o) => ({ label: o.text, stroke: color(o.color) }))));
  }
}

const DRAW = { stat: drawStat, table: drawTable, timeseries: drawTimeseries, "state-timeline": drawTimeline };

async function drawPanel(grid, panel, prometheus, values, range) {
  const { x, y, w, h } = panel.gridPos;
  const column = (grid.clientWidth + GRID_GAP) / 24;
  const box = element("section", "panel");
  box.dataset.panelId = panel.id;
  Object.assign(box.style, {
    left: `${x * column}px`, top: `${y * (GRID_UNIT + GRID_GAP)}px`,
    width: `${w * column - GRID_GAP}px`, height: `${h * (GRID_UNIT + GRID_GAP) - GRID_GAP}px`,
  });
  box.append(element("h2", "", panel.title));
  const body = element("div", "body");
  box.append(body);
  grid.append(box);
  const entry = { id: panel.id, title: panel.title, type: panel.type, series: 0, targets: {} };
  report.panels.push(entry);
  const frames = [];
  for (const target of panel.targets) {
    const data = await prometheus.run(substitute(target.expr, values), target, range);
    entry.targets[target.refId] = data.result.length;
    entry.series += data.result.length;
    if (data.result.length) frames.push({ target, result: data.result });
  }
  if (!entry.series) {
    box.classList.add("empty");
    body.append(element("div", "", "No data"));
    return;
  }
  DRAW[panel.type](body, panel, frames, range);
}

async function main() {
  const dashboardUrl = params.get("dashboard") || "../dashboards/headsetd-fleet.json";
  const prometheus = new Prometheus(params.get("prometheus") || "http://localhost:9090");
  const model = await getJSON(dashboardUrl);
  report.dashboard = model.uid;
  const now = Math.floor(Date.now() / 1000); // whole seconds: query_range steps land on them
  const start = parseTime(params.get("from") || model.time.from, now);
  const end = parseTime(params.get("to") || model.time.to, now);
  const grid = document.getElementById("grid");
  const step = Math.max(1, Math.round((end - start) / Math.max(100, grid.clientWidth / 4)));
  const scrape = seconds(params.get("scrape") || "15s");
  const range = { start, end, step };
  const values = {
    __range: `${Math.round(end - start)}s`,
    __rate_interval: `${Math.max(step + scrape, 4 * scrape)}s`,
  };
  await resolveVariables(model, prometheus, values);
  const header = document.getElementById("header");
  header.append(element("h1", "", model.title));
  const meta = element("div", "meta");
  const shown = Object.entries(report.variables).map(([k, v]) => `${k}=${v.value}`).join("  ");
  meta.innerHTML = "Preview (queries and layout, not Grafana's rendering) of ";
  meta.append(element("b", "", dashboardUrl.split("/").pop()), document.createTextNode(
    ` · ${new Date(start * 1000).toISOString().slice(11, 19)}–${new Date(end * 1000).toISOString().slice(11, 19)} UTC`
    + ` · step ${step}s · ${shown}`));
  header.append(meta);
  const bottom = Math.max(...model.panels.map((p) => p.gridPos.y + p.gridPos.h));
  grid.style.height = `${bottom * (GRID_UNIT + GRID_GAP)}px`;
  for (const panel of model.panels) {
    try {
      await drawPanel(grid, panel, prometheus, values, range);
    } catch (error) {
      fail(`panel ${panel.id} ${panel.title}: ${error.message}`);
    }
  }
}

main().catch((error) => fail(error.stack || error)).finally(() => {
  document.title = report.errors.length ? "preview: error" : "preview: done";
});
