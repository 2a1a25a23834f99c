// What the pages show, as the server renders it (gateway/web/pages.py, gateway/formatting.py).
// Every value goes into the DOM as text: never innerHTML.

const WAITING_STATES = ["QUEUED", "PENDING", "CONFIGURING", "REQUEUED"];

// A duration with a unit that keeps three decimals readable: 1.234 s, 12.300 ms, 4.560 µs, 870.0 ns.
export function formatSeconds(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  for (const [unit, scale] of [["s", 1], ["ms", 1e-3], ["µs", 1e-6]]) {
    if (seconds >= scale) return `${(seconds / scale).toFixed(3)} ${unit}`;
  }
  return `${(seconds / 1e-9).toFixed(1)} ns`;
}

// An ISO time as "YYYY-MM-DD HH:MM:SS" in UTC.
export function utc(iso) {
  if (!iso) return "-";
  return new Date(iso).toISOString().slice(0, 19).replace("T", " ");
}

// A run's state as a badge: {label, kind} (pages.py status_of).
export function statusOf(run) {
  if (!run.finished) {
    return { label: run.state.toLowerCase(), kind: WAITING_STATES.includes(run.state) ? "waiting" : "running" };
  }
  if (run.passed) return { label: "passed", kind: "passed" };
  return { label: run.state === "COMPLETED" ? "failed" : run.state.toLowerCase(), kind: "failed" };
}

// An element with optional class and text (or child nodes).
export function el(tag, className, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function link(href, text) {
  const a = el("a", "", text);
  a.href = href;
  return a;
}

export function badge(status) {
  return el("span", `status ${status.kind}`, status.label);
}

// Replace a table's rows; show the "nothing yet" note when there are none.
export function fillTable(table, empty, rows) {
  table.tBodies[0].replaceChildren(...rows);
  empty.hidden = rows.length > 0;
}

export async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}
