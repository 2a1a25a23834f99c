// The score-over-time chart of a leaderboard page, drawn with the vendored uPlot (vendor/, MIT):
// the best score so far as a step line, and each of the top users' ranked scores as points and lines.
import { formatSeconds, utc } from "./format.js";

const PALETTE = ["#2563eb", "#ea580c", "#16a34a", "#dc2626", "#9333ea", "#0891b2", "#ca8a04", "#db2777"];
const TOP_USERS = 8;
// Scores spanning more than this factor are drawn on a log scale: on a linear one the fast ones sit
// flat on zero.
export const LOG_SCALE_SPAN = 20;
const HEIGHT = 320;
const MINUTE = 60;
const HOUR = 3600;
const DAY = 86400;
// Tick steps of the time axis, whole seconds and up (uPlot would go down to milliseconds).
const TIME_STEPS = [1, 2, 5, 10, 15, 30, MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE,
  HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY, 91 * DAY, 365 * DAY];
let plot = null;

// Time ticks in UTC: the time of day as precise as the step needs, with the date under the first tick
// of each day (or the date alone when the steps are days).
function timeTicks(u, ticks, axis, space, step) {
  let shownDay = null;
  return ticks.map((t) => {
    const iso = new Date(t * 1e3).toISOString();
    const day = iso.slice(0, 10);
    if (step >= DAY) return day;
    const time = iso.slice(11, step < MINUTE ? 19 : 16);
    const label = day === shownDay ? time : `${time}\n${day}`;
    shownDay = day;
    return label;
  });
}

// An axis label: a duration without trailing zeros (28 µs, 20.5 µs); none for the unlabelled minor ticks
// of a log axis (uPlot passes them as null).
function durationTick(seconds) {
  return seconds === null || seconds === undefined ? "" : formatSeconds(seconds).replace(/\.?0+ /, " ");
}

// The time axis: the points' span with a margin, so that the first and last points are not on the edge.
function timeRange(u, min, max) {
  const margin = Math.max(30, (max - min) * 0.05);
  return [min - margin, max + margin];
}

// Timeline points (oldest first: {at, user, score}) as uPlot's aligned columns.
export function chartColumns(points) {
  const seconds = (p) => Date.parse(p.at) / 1000;
  const sorted = [...points].sort((a, b) => seconds(a) - seconds(b));
  const times = [...new Set(sorted.map(seconds))];
  const column = new Map(times.map((t, i) => [t, i]));
  const bestOf = new Map();
  for (const p of sorted) bestOf.set(p.user, Math.min(bestOf.get(p.user) ?? Infinity, p.score));
  const users = [...bestOf.keys()].sort((a, b) => bestOf.get(a) - bestOf.get(b)).slice(0, TOP_USERS);
  const byUser = new Map(users.map((user) => [user, new Array(times.length).fill(null)]));
  const best = new Array(times.length).fill(null);
  let least = Infinity;
  for (const p of sorted) {
    const i = column.get(seconds(p));
    least = Math.min(least, p.score);
    best[i] = least;
    const series = byUser.get(p.user);
    if (series) series[i] = series[i] === null ? p.score : Math.min(series[i], p.score);
  }
  return { users, data: [times, best, ...users.map((user) => byUser.get(user))] };
}

// "log" when the scores span orders of magnitude (max/min > LOG_SCALE_SPAN), else "linear".
export function scaleFor(points) {
  const scores = points.map((p) => p.score).filter((s) => s > 0);
  if (!scores.length) return "linear";
  return Math.max(...scores) / Math.min(...scores) > LOG_SCALE_SPAN ? "log" : "linear";
}

function options(users, width, scale) {
  const value = (u, v) => (v === null || v === undefined ? "-" : formatSeconds(v));
  return {
    width,
    height: HEIGHT,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
    scales: {
      x: { time: true, range: timeRange },
      // distr 3: uPlot's log scale (base 10), ticks at 1, 2, 5 of each decade
      y: scale === "log" ? { distr: 3, log: 10 } : {},
    },
    axes: [
      { incrs: TIME_STEPS, values: timeTicks, space: 80, size: 56 },
      { values: (u, ticks) => ticks.map(durationTick), size: 70 },
    ],
    series: [
      { label: "time", value: (u, ts) => (ts === null ? "-" : utc(new Date(ts * 1e3).toISOString())) },
      {
        label: "best",
        stroke: "#111827",
        width: 2.5,
        paths: uPlot.paths.stepped({ align: 1 }),
        points: { show: false },
        spanGaps: true,
        value,
      },
      ...users.map((user, i) => ({
        label: user,
        stroke: PALETTE[i % PALETTE.length],
        width: 1.5,
        spanGaps: true,
        points: { show: true, size: 7 },
        value,
      })),
    ],
  };
}

// Draw (or redraw) the chart in ``container``; no points, no chart.
export function drawChart(container, points) {
  if (plot) plot.destroy();
  plot = null;
  if (!points.length) return;
  const { users, data } = chartColumns(points);
  const scale = scaleFor(points);
  container.dataset.scale = scale; // what the page says under the chart, and what tests read
  const note = document.getElementById("chart-scale");
  if (note) note.hidden = scale !== "log";
  plot = new uPlot(options(users, container.clientWidth, scale), data, container);
}

window.addEventListener("resize", () => {
  if (plot) plot.setSize({ width: plot.root.parentElement.clientWidth, height: HEIGHT });
});
