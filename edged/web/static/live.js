// The board's live link to the box: the /events stream (server-sent events) and the status
// line. When the stream drops (the daemon restarted, the network went away) it says so at
// once (banner, status shown as unknown, never as the last good state), then tries again
// with a capped, jittered backoff; each try first fetches the whole board (the snapshot),
// then reopens the stream with the last id it saw, so the box replays what was missed.
// A page left open for days holds one stream, one timer and a fixed set of listeners.
"use strict";

window.EdgedLive = (() => {
  const $ = (sel) => document.querySelector(sel);
  const catalog = JSON.parse(($("#i18n") || {}).textContent || "{}");
  const t = (text) => catalog[text] || text;
  const RETRY_MIN = 500; // ms; doubled per failed try
  const RETRY_MAX = 3000; // a box on the LAN is cheap to ask; a tablet must not lag behind
  const SNAPSHOT_WAIT = 10000; // a snapshot not back by then counts as no answer
  const SILENCE = 25000; // no message (the box pings every 10 s): the stream is dead

  let hooks = null;
  let source = null;
  let lastId = "";
  let live = false; // the stream is open and the last status is from it
  let lost = false; // a stream was lost and none is back yet
  let tries = 0;
  let retryTimer = null;
  let silenceTimer = null;
  let lastStatus = null;

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // -- the status line ---------------------------------------------------------------------

  function renderStatus(status) {
    lastStatus = status;
    $("#status-summary").textContent = status.summary;
    $("#status-bar").replaceChildren(...status.pills.map(([id, label, value, tone]) => {
      const pill = el("span", `pill ${tone}`);
      pill.append(el("span", "pill-label", label), " ", el("span", "pill-value", value));
      if (id) pill.id = id;
      return pill;
    }));
    $("#status-bar").dataset.stale = "false";
    paint();
  }

  function renderStale() {
    // What the page last heard is no longer known to be true: say nothing green.
    $("#status-summary").textContent = t("Status unknown: the box does not answer");
    $("#status-bar").dataset.stale = "true";
    document.querySelectorAll("#status-bar .pill").forEach((pill) => {
      pill.className = "pill unknown";
      const value = pill.querySelector(".pill-value");
      if (value) value.textContent = "?";
    });
    paint();
  }

  function paint() {
    const dot = $("#link-dot");
    const banner = $("#offline-banner");
    const online = !!(lastStatus && lastStatus.online);
    if (!live && !lost) return; // the first stream is opening: the page's own status stands
    if (!live) {
      dot.className = "dot unknown";
      banner.textContent = t("The box does not answer: reconnecting… This page is not up to date until it is back.");
      banner.hidden = false;
    } else if (!online) {
      dot.className = "dot bad";
      banner.textContent = t("Offline since {time}: decisions are queued and sent when the box is back online.")
        .replace("{time}", lastStatus ? lastStatus.link_since_text : "");
      banner.hidden = false;
    } else {
      dot.className = "dot ok";
      banner.hidden = true;
    }
    document.body.dataset.live = live ? "true" : "false";
    document.body.classList.toggle("offline", !live || !online);
  }

  // -- the stream --------------------------------------------------------------------------

  function heard(event) {
    if (event.lastEventId) lastId = event.lastEventId;
    clearTimeout(silenceTimer);
    silenceTimer = setTimeout(() => down(), SILENCE);
  }

  function open() {
    const url = lastId ? `/events?last=${encodeURIComponent(lastId)}` : "/events";
    source = new EventSource(url);
    source.addEventListener("open", (e) => { tries = 0; heard(e); });
    source.addEventListener("ping", heard);
    source.addEventListener("status", (e) => {
      heard(e);
      live = true;
      lost = false;
      const status = JSON.parse(e.data);
      renderStatus(status);
      hooks.status(status);
    });
    source.addEventListener("board", (e) => {
      heard(e);
      hooks.board(JSON.parse(e.data));
    });
    source.addEventListener("notice", (e) => { heard(e); hooks.notice(JSON.parse(e.data)); });
    // The browser's own retry gives up for good on an HTTP error; this page never does.
    source.addEventListener("error", () => down());
  }

  function down() {
    clearTimeout(silenceTimer);
    if (source) { source.close(); source = null; }
    live = false;
    lost = true;
    renderStale();
    schedule();
  }

  function schedule() {
    if (retryTimer) return;
    const cap = Math.min(RETRY_MAX, RETRY_MIN * 2 ** tries);
    tries = Math.min(tries + 1, 10);
    const wait = cap / 2 + Math.random() * (cap / 2); // jitter: tablets do not retry in step
    retryTimer = setTimeout(retry, wait);
  }

  async function retry() {
    retryTimer = null;
    if (source) return;
    // The snapshot first: it answers only when the box is back (and sends a signed-out
    // page to /login); then the stream, which carries everything after it. A snapshot
    // that hangs (a half-open connection) or throws never stops the retries.
    let answered = false;
    try {
      answered = await Promise.race([
        hooks.snapshot(),
        new Promise((resolve) => { setTimeout(() => resolve(false), SNAPSHOT_WAIT); }),
      ]);
    } catch (err) {
      answered = false;
    }
    if (source) return;
    if (answered) open();
    else schedule();
  }

  function now() {
    // Back on the network or in front of someone: no need to wait out the backoff.
    if (source || !lost) return;
    clearTimeout(retryTimer);
    retryTimer = null;
    tries = 0;
    retry();
  }

  /** Start following the box. ``h.snapshot()`` fetches the whole board and resolves
   *  to true when the box answered; ``h.board(data)``, ``h.status(status)`` and
   *  ``h.notice(data)`` receive the stream's messages. */
  function start(h) {
    hooks = h;
    window.addEventListener("online", now);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") now();
    });
    open();
  }

  return { start, renderStatus, isLive: () => live };
})();
