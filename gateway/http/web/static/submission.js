// A submission page, live: its runs' events as they are recorded (state changes, progress lines), and
// when every run has ended, the page again with the results.
import { el, utc } from "./format.js";

const root = document.getElementById("submission");
const finished = root.dataset.finished === "true";
const log = document.getElementById("log");
const follow = document.getElementById("follow");

function runSection(runId) {
  return document.querySelector(`section.run[data-run="${CSS.escape(runId)}"]`);
}

function show(event) {
  const section = runSection(event.run_id);
  const which = section ? section.querySelector("h2").firstChild.textContent.trim() : event.run_id;
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 8;
  log.append(
    el(
      "li",
      `kind-${event.kind}`,
      el("span", "at", utc(event.at).slice(11)),
      el("span", "which", which),
      el("span", "state", event.state.toLowerCase()),
      el("span", "text", event.message),
    ),
  );
  if (atBottom) log.scrollTop = log.scrollHeight; // follow the newest line unless scrolled up
  document.getElementById("log-empty").hidden = true;
  if (section && event.kind !== "progress" && !finished) {
    const status = section.querySelector(".status");
    status.textContent = event.state.toLowerCase();
    status.className = `status ${event.kind === "finished" ? "ended" : "running"}`;
  }
}

const source = new EventSource(root.dataset.events);
for (const kind of ["state", "progress", "finished"]) {
  source.addEventListener(kind, (message) => show(JSON.parse(message.data)));
}
source.addEventListener("end", () => {
  source.close(); // else the browser reconnects to a stream that has nothing more to say
  if (finished) {
    document.getElementById("log-empty").hidden = log.children.length > 0;
    return;
  }
  follow.textContent = "Finished: loading the results…";
  window.location.reload();
});
source.addEventListener("error", () => {
  if (source.readyState === EventSource.CONNECTING) follow.textContent = "Connection lost: reconnecting…";
});
source.addEventListener("open", () => {
  if (!finished) follow.textContent = "Following the runs live…";
});
