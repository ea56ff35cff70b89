// The kitchen display: tiles oldest first, a timer against each due time, the all-day
// counts and the recall row, worked by touch, keys (a USB bump bar types keys) or the
// panel's buttons. The selection is the box's (the panel moves it too): every key asks the
// box, and the page draws what the box says. Follows the box through live.js's stream, so
// a display that lost the box says so instead of showing old tiles as live.
"use strict";

(() => {
  const { $, t, el, allergyMark, addLines } = window.edgedCards;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const POLL = 10000; // ms; also tells the box the display is still on
  let data = null;
  let clockSkew = 0; // box time minus this device's time, seconds
  let loading = null;
  let again = false;
  let shownSelection = null;
  const openRecall = new Set(); // recall rows opened, kept open across redraws

  async function post(url, body) {
    try {
      const response = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(body || {}),
      });
      if (response.status === 401) window.location.assign("/login");
      let answer = {};
      try { answer = await response.json(); } catch (err) { answer = {}; }
      return answer;
    } catch (err) {
      return { ok: false, code: "NO_ANSWER" };
    }
  }

  function say(text) {
    const notice = $("#kitchen-notice");
    notice.textContent = text;
    notice.hidden = !text;
  }

  // -- drawing -----------------------------------------------------------------------------

  function minutesLeft(order) {
    if (!order.due) return null;
    return (order.due - (Date.now() / 1000 + clockSkew)) / 60;
  }

  function level(order) {
    const left = minutesLeft(order);
    if (left === null) return "";
    if (left < 0) return "red";
    return left <= data.amber_minutes ? "amber" : "green";
  }

  function timerText(order) {
    const left = minutesLeft(order);
    if (left === null) return "";
    const whole = Math.floor(Math.abs(left));
    const seconds = Math.floor((Math.abs(left) - whole) * 60);
    return `${left < 0 ? "-" : ""}${whole}:${String(seconds).padStart(2, "0")}`;
  }

  function tile(order, index) {
    const node = el("article", {
      class: order.selected ? "tile selected" : "tile",
      "data-order-id": String(order.id),
      "data-status": order.status,
      "aria-current": order.selected ? "true" : "false",
    });
    node.dataset.level = level(order);
    const header = el("header", {},
      el("span", { class: "index", text: index < 9 ? `${index + 1}` : "" }),
      el("strong", { class: "code", text: order.code }),
      el("span", { class: "type", text: order.type_text }),
      el("span", { class: "timer", text: timerText(order) }));
    node.append(header);
    const where = order.table ? t("Table: {table}", { table: order.table })
      : (order.due_text ? `${order.due_label || t("Due")} ${order.due_text}` : "");
    node.append(el("p", { class: "where", text: where }));
    const state = order.queued
      ? t("{status}: queued, sent as soon as Sinqro answers", { status: order.status_text })
      : order.status_text;
    node.append(el("p", { class: "state", text: state }));
    const list = el("ul", { class: "lines" });
    addLines(list, order.lines);
    node.append(list);
    if (order.comment) {
      const note = el("p", { class: order.comment_allergy ? "note allergy" : "note" });
      if (order.comment_allergy) note.append(allergyMark(), " ");
      note.append(order.comment);
      node.append(note);
    }
    if (order.bump) {
      const button = el("button", { type: "button", class: "bump", text: order.bump_text });
      button.addEventListener("click", (e) => { e.stopPropagation(); bump(order.id); });
      node.append(button);
    }
    node.addEventListener("click", () => select({ order_id: order.id }));
    return node;
  }

  function render() {
    if (!data) return;
    const tiles = $("#tiles");
    if (data.tiles.length) tiles.replaceChildren(...data.tiles.map(tile));
    else tiles.replaceChildren(el("p", { class: "empty", text: t("Nothing to prepare.") }));
    $("#tile-count").textContent = String(data.tiles.length);
    // A selection moved by a key or a button past the screen's edge scrolls into sight.
    const picked = tiles.querySelector(".tile.selected");
    if (picked && data.selected !== shownSelection) picked.scrollIntoView({ block: "nearest" });
    shownSelection = data.selected;
    $("#all-day").replaceChildren(...data.all_day.map((row) => el("li", {},
      el("span", { class: "n", text: t("{count} x", { count: row.count }) }), " ",
      el("span", { class: "label", text: row.label }))));
    // Recall: the last bumped, newest first; a tap shows what was on the tile again.
    $("#recall").replaceChildren(...data.recall.map((order) => {
      const items = el("ul", { class: "lines" });
      addLines(items, order.lines);
      const row = el("li", { "data-order-id": String(order.id) });
      const details = el("details", { open: openRecall.has(order.id) },
        el("summary", { text: `${order.code} · ${order.type_text} · ${order.status_text}` }),
        items);
      details.addEventListener("toggle", () => {
        if (details.open) openRecall.add(order.id); else openRecall.delete(order.id);
      });
      row.append(details);
      return row;
    }));
  }

  function tick() {
    // The timers run between fetches; a page that lost the box stops claiming anything.
    if (!data || !window.EdgedLive.isLive()) return;
    for (const node of document.querySelectorAll("#tiles .tile")) {
      const order = data.tiles.find((o) => String(o.id) === node.dataset.orderId);
      if (!order) continue;
      node.dataset.level = level(order);
      node.querySelector(".timer").textContent = timerText(order);
    }
  }

  // -- loading -----------------------------------------------------------------------------

  async function load() {
    let answer;
    try {
      const response = await fetch("/api/kitchen", { credentials: "same-origin" });
      if (response.status === 401) { window.location.assign("/login"); return false; }
      if (!response.ok) return false;
      answer = await response.json();
    } catch (err) { return false; }
    clockSkew = answer.now - Date.now() / 1000;
    data = answer;
    window.EdgedLive.renderStatus(answer.status);
    render();
    document.body.dataset.kitchenLoaded = "true";
    return true;
  }

  function schedule() {
    // One fetch at a time; a change during one fetches once more after it.
    if (loading) { again = true; return; }
    loading = load().finally(() => {
      loading = null;
      if (again) { again = false; schedule(); }
    });
  }

  // -- acting ------------------------------------------------------------------------------

  const REFUSALS = {
    NOT_ON_PASS: t("That order is not on the pass any more."),
    NO_ANSWER: t("The box does not answer: nothing was bumped."),
  };

  async function bump(orderId) {
    const answer = await post("/api/kitchen/bump", orderId ? { order_id: orderId } : {});
    if (answer.ok) say(answer.state === "done" ? "" : t("Bumped: queued, sent as soon as Sinqro answers"));
    else say(REFUSALS[answer.code] || t("Not bumped: {message}", { message: answer.message || answer.code || "?" }));
    schedule();
  }

  async function select(body) {
    await post("/api/kitchen/select", body);
    schedule();
  }

  document.addEventListener("keydown", (e) => {
    if (e.altKey || e.ctrlKey || e.metaKey || !data) return;
    const key = e.key;
    if (key === "ArrowRight" || key === "ArrowDown" || (key === "Tab" && !e.shiftKey)) {
      select({ step: 1 });
    } else if (key === "ArrowLeft" || key === "ArrowUp" || (key === "Tab" && e.shiftKey)) {
      select({ step: -1 });
    } else if (key === " " || key === "Enter") {
      bump(null);
    } else if (/^[1-9]$/.test(key) && data.tiles[Number(key) - 1]) {
      select({ order_id: data.tiles[Number(key) - 1].id });
    } else {
      return;
    }
    e.preventDefault();
  });

  setInterval(tick, 1000);
  setInterval(() => { if (window.EdgedLive.isLive()) schedule(); }, POLL);
  window.EdgedLive.start({
    snapshot: load,
    board: schedule,
    status: () => {},
    notice: () => {},
  });
})();
