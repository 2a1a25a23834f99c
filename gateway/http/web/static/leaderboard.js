// A leaderboard page, live: on each "changed" event of the leaderboard's stream, re-read the ranking,
// the recent runs and the score timeline from the API and redraw them.
import { drawChart } from "./chart.js";
import { badge, el, fillTable, getJSON, link, statusOf, utc } from "./format.js";

const root = document.getElementById("leaderboard");
const api = root.dataset.api;
const gpu = root.dataset.gpu;
const query = `gpu=${encodeURIComponent(gpu)}`;
const live = document.getElementById("live");
const chart = document.getElementById("chart");

function rankingRow(entry) {
  return el(
    "tr",
    "",
    el("td", "num", entry.rank),
    el("td", "name", entry.user),
    el("td", "num score", entry.score_text),
    el("td", "file", link(`/runs/${encodeURIComponent(entry.run_id)}`, entry.file_name)),
    el("td", "", entry.site),
    el("td", "time", utc(entry.submitted_at)),
  );
}

function runRow(run) {
  return el(
    "tr",
    "",
    el("td", "time", utc(run.queued_at)),
    el("td", "name", run.user),
    el("td", "file", link(`/submissions/${run.submission_id}`, run.file_name)),
    el("td", "", run.gpu_type || "-"),
    el("td", "", run.site || "-"),
    el("td", "", badge(statusOf(run))),
    el("td", "num score", run.score_text || "-"),
  );
}

async function drawTimeline() {
  if (!gpu) return;
  const points = await getJSON(`${api}/timeline?${query}`);
  drawChart(chart, points);
  document.getElementById("chart-empty").hidden = points.length > 0;
}

async function refresh() {
  const [rankings, runs] = await Promise.all([getJSON(`${api}/ranking?${query}`), getJSON(`${api}/runs`)]);
  const entries = rankings.length ? rankings[0].entries : [];
  fillTable(document.getElementById("ranking"), document.getElementById("ranking-empty"), entries.map(rankingRow));
  fillTable(document.getElementById("runs"), document.getElementById("runs-empty"), runs.map(runRow));
  await drawTimeline();
}

// One refresh at a time; changes that come during one lead to one more.
let running = null;
let again = false;
function scheduleRefresh() {
  if (running) {
    again = true;
    return;
  }
  running = refresh()
    .catch((error) => console.warn("leaderboard refresh failed:", error))
    .finally(() => {
      running = null;
      if (again) {
        again = false;
        scheduleRefresh();
      }
    });
}

function setLive(state, text) {
  live.dataset.state = state;
  live.textContent = text;
}

const source = new EventSource(`${api}/events`);
let lost = false;
source.addEventListener("open", () => {
  setLive("open", "live");
  if (lost) scheduleRefresh(); // whatever changed while the stream was away
  lost = false;
});
source.addEventListener("error", () => {
  lost = true;
  // a refused stream (an error status) is not retried by the browser; a dropped one is
  const closed = source.readyState === EventSource.CLOSED;
  setLive("lost", closed ? "not live: reload the page" : "reconnecting…");
});
source.addEventListener("changed", scheduleRefresh);
window.addEventListener("pagehide", () => source.close());

drawTimeline().catch((error) => console.warn("score timeline failed:", error));
