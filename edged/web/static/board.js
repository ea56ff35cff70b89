// The live order board: fetches /api/board, listens to /events (server-sent events) and
// sends decisions with the session's CSRF token. What a card and a history row show is
// drawn by cards.js (loaded first). Words come from the box's catalog (t()); times,
// amounts and labels arrive already in the box's language and time zone.
"use strict";

(() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const { $, t, el, drawFacts, orderState, historyRow } = window.edgedCards;
  const baseTitle = document.title;
  const results = new Map(); // order id -> last result {text, ok, queued}, kept across re-renders
  const opened = new Set(); // orders opened in the compact view
  const seenOrders = new Set(); // waiting orders this page already announced
  let alerting = []; // waiting orders announced and not marked seen yet
  let printers = [];
  let canReprint = false;
  let online = true;
  let paired = true;
  let compact = localStorage.getItem("edged.board.compact") === "1";
  let clockSkew = 0; // box time minus this device's time, seconds
  let chimeTimer = null;
  let wakeLock = null;

  async function post(url, body) {
    let response;
    try {
      response = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(body || {}),
      });
    } catch (err) {
      return { status: 0, data: { ok: false, code: "NO_ANSWER" } };
    }
    if (response.status === 401) window.location.assign("/login");
    let data = {};
    try { data = await response.json(); } catch (err) { data = {}; }
    return { status: response.status, data };
  }

  // -- "sold out" next to an item: the menu's outbox command, until closing ----------------

  const soldOutSaid = new Map(); // "kind:id" -> what the change is at
  function soldOutWords(change) {
    if (change.state === "done") return t("{what}: done, Sinqro has it.", { what: t("Sold out") });
    if (change.state === "queued") return t("{what}: queued, sent as soon as Sinqro answers.", { what: t("Sold out") });
    if (change.state === "retrying") return t("{what}: not sent yet, trying again.", { what: t("Sold out") });
    return t("{what}: refused by Sinqro: {reason}", { what: t("Sold out"), reason: change.message || change.code || "?" });
  }
  const soldOut = {
    said: (item) => soldOutSaid.get(`${item.kind}:${item.id}`) || "",
    async tap(item) {
      const key = `${item.kind}:${item.id}`;
      soldOutSaid.set(key, t("Sending…"));
      render();
      let { data } = await post("/api/menu/availability",
        { kind: item.kind, id: item.id, available: false, until: "closing" });
      if (!data.state) data = { ...data, state: "refused" };
      while (data.command_id && (data.state === "queued" || data.state === "retrying")) {
        soldOutSaid.set(key, soldOutWords(data));
        render();
        await new Promise((resolve) => setTimeout(resolve, 1000));
        try {
          const response = await fetch(`/api/menu/changes/${data.command_id}`, { credentials: "same-origin" });
          if (response.ok) data = await response.json();
        } catch (err) { /* the box is away: ask again */ }
      }
      soldOutSaid.set(key, soldOutWords(data));
      render();
    },
  };

  // -- words for outcomes ------------------------------------------------------------------

  const REFUSALS = {
    DECISION_QUEUED: t("Refused: this order already has a decision waiting to be sent. Wait until Sinqro has it."),
    NOT_WAITING: t("Refused: this order is no longer waiting."),
    ORDER_FINAL: t("Refused: this order is already finished or cancelled."),
    UNKNOWN_ORDER: t("Refused: this box does not know that order."),
    REPRINT_LIMIT: t("Refused: this order was reprinted too often, or too many reprints were asked in the last minute."),
    ORDER_CANCELLATION_COMMENT_IS_REQUIRED: t("Please say why: Sinqro needs a cancellation comment."),
    NO_ANSWER: t("The box did not answer. Check its power and network, then try again."),
  };

  function describeResult(data) {
    if (data.ok && data.state === "done") return t("Done: Sinqro has it.");
    if (data.ok && data.state === "queued") return t("Queued: sent as soon as Sinqro answers.");
    if (data.ok) return t("Done.");
    if (REFUSALS[data.code]) return REFUSALS[data.code];
    return t("Refused by Sinqro: {reason}", { reason: data.message || data.code || "?" });
  }

  // -- sound, vibration, title, screen -------------------------------------------------------

  const chime = $("#chime");
  let soundOn = false;

  async function enableSound() {
    // Browsers play sound only after a tap on the page: this is that tap.
    try {
      chime.muted = true;
      await chime.play();
      chime.pause();
      chime.currentTime = 0;
      chime.muted = false;
      soundOn = true;
    } catch (err) {
      soundOn = false;
    }
    $("#enable-sound").hidden = soundOn;
    $("#sound-on").hidden = !soundOn;
    keepAwake();
  }

  function ring() {
    if (soundOn) {
      chime.currentTime = 0;
      chime.play().catch(() => {});
    }
    if (navigator.vibrate) navigator.vibrate([300, 150, 300]);
  }

  chime.addEventListener("playing", () => {
    document.body.dataset.chimes = String(Number(document.body.dataset.chimes || 0) + 1);
  });

  async function keepAwake() {
    // A tablet left on the counter must not go dark while orders come in.
    if (!("wakeLock" in navigator) || wakeLock) return;
    try {
      wakeLock = await navigator.wakeLock.request("screen");
      wakeLock.addEventListener("release", () => { wakeLock = null; });
      document.body.dataset.wakeLock = "on";
    } catch (err) {
      wakeLock = null;
    }
  }
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && soundOn) keepAwake();
  });

  function updateTitle(waitingCount) {
    if (alerting.length) document.title = `(${alerting.length}) ${t("New order")} · ${baseTitle}`;
    else if (waitingCount) document.title = `(${waitingCount}) ${baseTitle}`;
    else document.title = baseTitle;
  }

  function announce(waiting) {
    const ids = new Set(waiting.map((o) => o.id));
    alerting = alerting.filter((o) => ids.has(o.id));
    const fresh = waiting.filter((o) => !seenOrders.has(o.id) && !o.acknowledged);
    waiting.forEach((o) => seenOrders.add(o.id));
    alerting = alerting.concat(fresh);
    const box = $("#new-order-alert");
    if (!alerting.length) {
      box.hidden = true;
      keepClearOfBanner();
      clearInterval(chimeTimer);
      chimeTimer = null;
      return;
    }
    const first = alerting[0];
    const text = alerting.length === 1
      ? t("New order #{code}: {type}, due {time}", { code: first.code, type: first.type_text, time: first.due_text })
      : t("{n} new orders", { n: alerting.length });
    $("#alert-text").textContent = text;
    box.hidden = false;
    keepClearOfBanner();
    if (fresh.length) {
      ring();
      clearInterval(chimeTimer);
      chimeTimer = setInterval(ring, 20000); // again until someone says "seen"
    }
  }

  function keepClearOfBanner() {
    // The sticky banner covers the top of the page: scrolling to a card (a cancel form
    // opened, "seen") stops below it, never under it.
    const box = $("#new-order-alert");
    document.documentElement.style.scrollPaddingTop = box.hidden ? "" : `${box.offsetHeight + 8}px`;
  }

  $("#alert-seen").addEventListener("click", async () => {
    const ids = alerting.map((o) => o.id);
    alerting = [];
    $("#new-order-alert").hidden = true;
    keepClearOfBanner();
    clearInterval(chimeTimer);
    chimeTimer = null;
    updateTitle(Number($("#waiting-count").textContent));
    const first = document.querySelector("#waiting .order");
    if (first) first.scrollIntoView({ block: "start" });
    for (const id of ids) await post(`/api/orders/${id}/ack`, {});
  });
  $("#enable-sound").addEventListener("click", enableSound);

  // -- counters ----------------------------------------------------------------------------

  function minutesBetween(from, to) {
    return Math.floor((to - from) / 60);
  }

  function updateClock(node) {
    const now = Date.now() / 1000 + clockSkew;
    const seen = Number(node.dataset.seen);
    const due = Number(node.dataset.due);
    const chip = $(".clock", node);
    const dueNode = $(".due", node);
    if (node.classList.contains("waiting")) {
      const waited = Math.max(0, minutesBetween(seen, now));
      chip.textContent = t("waiting {n} min", { n: waited });
      chip.dataset.level = waited >= 5 ? "red" : waited >= 2 ? "amber" : "ok";
    } else {
      chip.textContent = "";
      chip.dataset.level = "";
    }
    if (due) {
      const left = Math.round((due - now) / 60);
      // "Pickup 13:42": the time the kitchen must meet, when it is not the customer's.
      const when = [node.dataset.dueLabel, node.dataset.dueText].filter(Boolean).join(" ");
      if (left < 0) dueNode.textContent = t("{time} · late {n} min", { time: when, n: -left });
      else if (left <= 90) dueNode.textContent = t("{time} · in {n} min", { time: when, n: left });
      else dueNode.textContent = t("{time} · {day}", { time: when, day: node.dataset.dueDay });
      dueNode.dataset.level = left < 0 ? "red" : left <= 10 ? "amber" : "ok";
    }
  }

  setInterval(() => document.querySelectorAll(".order").forEach(updateClock), 15000);

  // -- cards -------------------------------------------------------------------------------

  function decisionLabel(label) {
    return online || !paired ? label : t("Queue: {action}", { action: label });
  }

  async function decide(order, url, body, node) {
    const out = $(".result", node);
    out.textContent = t("Sending…");
    node.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    const { data } = await post(url, body);
    const text = describeResult(data);
    results.set(order.id, { text, ok: !!data.ok, queued: !!data.ok && data.state === "queued" });
    out.textContent = text;
    out.dataset.ok = data.ok ? "true" : "false";
    node.querySelectorAll("button").forEach((b) => { b.disabled = false; });
    if (data.ok && url.endsWith("/cancel")) {
      $(".cancel-form", node).hidden = true;
      $(".actions", node).hidden = false;
    }
    scheduleBoard();
  }

  function pendingText(order) {
    if (!order.pending.length) return "";
    // Offline, every decision simply waits; online, a retry means Sinqro has not taken it.
    return order.pending.map((c) => (c.retrying && online
      ? t("{action}: Sinqro did not take it yet, trying again", { action: c.text })
      : t("{action}: queued, sent as soon as Sinqro answers", { action: c.text }))).join(" · ");
  }

  function cancelForm(order, node) {
    const form = $(".cancel-form", node);
    const box = $(".reasons", form);
    order.cancel_reasons.forEach((reason, i) => {
      const id = `reason-${order.id}-${i}`;
      box.append(el("label", { class: "reason", htmlFor: id },
        el("input", { type: "radio", name: "reason", value: reason, id }), el("span", { text: reason })));
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const picked = $("input[name=reason]:checked", form);
      const typed = $("input[name=comment]", form).value.trim();
      const comment = typed || (picked ? picked.value : "");
      const error = $(".field-error", form);
      if (!comment) { // Sinqro refuses a cancel without a comment; so do we, early.
        error.hidden = false;
        $("input[name=comment]", form).setAttribute("aria-invalid", "true");
        return;
      }
      error.hidden = true;
      decide(order, `/api/orders/${order.id}/cancel`, { comment }, node);
    });
    $(".cancel-back", form).addEventListener("click", () => {
      form.hidden = true;
      $(".actions", node).hidden = false;
    });
    return form;
  }

  function openCancel(form, node) {
    form.hidden = false;
    $(".actions", node).hidden = true;
    // Below the sticky banner, never under it (scroll-padding-top follows its height).
    form.scrollIntoView({ block: "nearest" });
  }

  function resultFor(order) {
    const last = results.get(order.id);
    if (!last) return null;
    // A queued decision that is no longer queued was delivered: say so, not "queued".
    if (last.queued && !order.pending.length) {
      const sent = { text: t("Sent: Sinqro has it."), ok: true, queued: false };
      results.set(order.id, sent);
      return sent;
    }
    return last;
  }

  function card(order) {
    const node = $("#order-template").content.firstElementChild.cloneNode(true);
    node.dataset.orderId = String(order.id);
    node.dataset.seen = String(order.first_seen);
    node.dataset.due = String(order.due || "");
    node.dataset.dueText = order.due_text;
    node.dataset.dueDay = order.due_day;
    node.dataset.dueLabel = order.due_label || "";
    node.dataset.type = order.type;
    node.dataset.state = orderState(order);
    node.classList.add(order.waiting ? "waiting" : "active");
    if (compact && !opened.has(order.id)) node.classList.add("folded");
    const head = $("header", node);
    head.addEventListener("click", (event) => {
      if (!compact || event.target.closest("a, button")) return;
      if (opened.has(order.id)) opened.delete(order.id); else opened.add(order.id);
      node.classList.toggle("folded", !opened.has(order.id));
      head.setAttribute("aria-expanded", String(opened.has(order.id)));
    });
    if (compact) {
      head.setAttribute("role", "button");
      head.tabIndex = 0;
      head.setAttribute("aria-expanded", String(opened.has(order.id)));
      head.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); head.click(); }
      });
    }
    drawFacts(node, order, soldOut);
    $(".pending", node).textContent = pendingText(order);
    const last = resultFor(order);
    if (last) {
      $(".result", node).textContent = last.text;
      $(".result", node).dataset.ok = last.ok ? "true" : "false";
    }
    const actions = $(".actions", node);
    // A decision is queued: no second one to take (the box would refuse it); the card
    // says "queued" until Sinqro has it.
    const decided = order.pending.length > 0;
    if (order.waiting && !decided) {
      const form = cancelForm(order, node);
      for (const action of order.actions) {
        const label = action.kind === "accept" && action.delay
          ? t("+{minutes} min", { minutes: action.delay }) : action.label;
        const button = el("button", { type: "button", text: decisionLabel(label),
          class: action.kind === "cancel" ? "danger" : "accept" });
        button.dataset.kind = action.kind;
        button.title = action.label;
        if (action.delay) {
          button.dataset.delay = String(action.delay);
          button.setAttribute("aria-label", decisionLabel(action.label));
        }
        if (action.kind === "accept") {
          button.addEventListener("click", () => decide(order,
            `/api/orders/${order.id}/accept`, { delay: action.delay }, node));
        } else {
          button.addEventListener("click", () => openCancel(form, node));
        }
        actions.append(button);
      }
    } else if (!order.waiting && !decided) {
      for (const step of order.statuses) {
        const button = el("button", { type: "button", text: decisionLabel(step.label), class: "step" });
        button.dataset.status = step.status;
        button.addEventListener("click", () => decide(order,
          `/api/orders/${order.id}/status`, { status: step.status }, node));
        actions.append(button);
      }
    }
    // Reprint belongs to orders already decided, not to a card waiting for a decision.
    if (canReprint && !order.waiting) actions.append(reprintButton(order, node));
    updateClock(node);
    return node;
  }

  function shown(order) {
    const type = $("#filter-type").value;
    const state = $("#filter-state").value;
    return (type === "all" || order.type === type) && (state === "all" || orderState(order) === state);
  }

  function reprintButton(order, node) {
    const wrap = el("span", { class: "reprint" });
    let select = null;
    if (printers.length > 1) {
      select = el("select", { "aria-label": t("Printer") });
      select.append(el("option", { value: "", text: t("all printers") }));
      printers.forEach((name) => select.append(el("option", { value: name, text: name })));
      wrap.append(select);
    }
    const button = el("button", { type: "button", text: t("Reprint"), class: "reprint-button" });
    button.addEventListener("click", async () => {
      const { data } = await post(`/api/orders/${order.id}/reprint`,
        { printer: select ? select.value : "" });
      const text = data.ok ? t("Reprint sent to the printer.") : describeResult(data);
      results.set(order.id, { text, ok: !!data.ok });
      const out = $(".result", node);
      if (out) out.textContent = text;
    });
    wrap.append(button);
    return wrap;
  }

  function signature(order) {
    // Everything a card is drawn from: the same signature draws the same card.
    const last = results.get(order.id);
    const { acknowledged, updated, ...drawn } = order; // not on the card
    return JSON.stringify([drawn, last ? last.text : "", online, paired, compact, opened.has(order.id),
      [...soldOutSaid]]);
  }

  function fill(container, orders, emptyText) {
    // A card whose order did not change is kept as it is, so a button under a finger, a
    // cancel reason being typed or a scroll position never jumps when the board refreshes.
    const kept = new Map();
    container.querySelectorAll(".order").forEach((node) => kept.set(node.dataset.orderId, node));
    const visible = orders.filter(shown);
    const nodes = [];
    if (!orders.length) nodes.push(el("p", { class: "empty", text: emptyText }));
    else if (!visible.length) nodes.push(el("p", { class: "empty", text: t("No order matches the filter.") }));
    for (const order of visible) {
      const old = kept.get(String(order.id));
      const sig = signature(order);
      if (old && old.dataset.sig === sig) {
        nodes.push(old);
        continue;
      }
      const node = card(order);
      node.dataset.sig = signature(order); // resultFor() may have just said "sent"
      const form = old && $(".cancel-form", old);
      if (form && !form.hidden) { // keep a cancel reason being typed
        const picked = $("input[name=reason]:checked", form);
        const fresh = $(".cancel-form", node);
        fresh.hidden = false;
        $(".actions", node).hidden = true;
        $("input[name=comment]", fresh).value = $("input[name=comment]", form).value;
        fresh.querySelectorAll("input[name=reason]").forEach((r) => { r.checked = !!picked && r.value === picked.value; });
      }
      nodes.push(node);
    }
    container.replaceChildren(...nodes);
    const hidden = orders.length - visible.length;
    const count = container.parentElement.querySelector(".filtered");
    if (count) count.textContent = hidden ? t("{n} hidden by the filter", { n: hidden }) : "";
  }

  // -- status and offline (the stream and the status line: live.js) -----------------------

  function onStatus(status) {
    const was = online;
    online = status.online;
    if (was !== online) scheduleBoard(); // the buttons say "queue" while offline
    $("#virtual-panel").hidden = !status.virtual_panel;
    renderPairing(status);
  }

  function renderPairing(status) {
    // Deliberately disconnected: nothing is queued, nothing will be sent until it is paired.
    if (paired && !(status && status.pairing && !status.pairing.paired)) return;
    if (document.body.dataset.live === "false") return; // the box itself does not answer
    const banner = $("#offline-banner");
    banner.replaceChildren(t("This box is not connected to Sinqro: orders cannot be accepted or cancelled here."),
      " ", el("a", { href: "/pairing", text: t("Connect it on the Sinqro page.") }));
    banner.hidden = false;
  }

  // -- loading -----------------------------------------------------------------------------

  // The whole board (the snapshot); true when the box answered.
  async function loadBoard() {
    let response;
    let data;
    try {
      response = await fetch("/api/board", { credentials: "same-origin" });
      if (response.status === 401) { window.location.assign("/login"); return false; }
      if (!response.ok) return false;
      data = await response.json();
    } catch (err) { return false; }
    clockSkew = data.now - Date.now() / 1000;
    printers = data.printers;
    canReprint = data.can_reprint;
    paired = data.paired;
    lastBoard = data;
    window.EdgedLive.renderStatus(data.status);
    onStatus(data.status);
    render();
    $("#waiting-count").textContent = String(data.waiting.length);
    $("#active-count").textContent = String(data.active.length);
    announce(data.waiting);
    updateTitle(data.waiting.length);
    document.body.dataset.boardLoaded = "true";
    forgetGone([...data.waiting, ...data.active]);
    loadHistory();
    return true;
  }

  function forgetGone(orders) {
    // A page open for days keeps only what the board still shows.
    const ids = new Set(orders.map((o) => o.id));
    for (const id of results.keys()) if (!ids.has(id)) results.delete(id);
    for (const id of seenOrders) if (!ids.has(id)) seenOrders.delete(id);
  }

  let lastBoard = null;
  function render() {
    if (!lastBoard) return;
    fill($("#waiting"), lastBoard.waiting, t("No order waiting."));
    fill($("#active"), lastBoard.active, t("Nothing in progress."));
  }

  function setCompact(on) {
    compact = on;
    localStorage.setItem("edged.board.compact", on ? "1" : "0");
    document.body.classList.toggle("compact", on);
    const button = $("#view-compact");
    button.setAttribute("aria-pressed", String(on));
    button.textContent = on ? t("Full cards") : t("Compact list");
    render();
  }
  $("#view-compact").addEventListener("click", () => setCompact(!compact));
  ["#filter-type", "#filter-state"].forEach((sel) => $(sel).addEventListener("change", render));
  document.body.classList.toggle("compact", compact);
  $("#view-compact").setAttribute("aria-pressed", String(compact));
  $("#view-compact").textContent = compact ? t("Full cards") : t("Compact list");

  let boardTimer = null;
  function scheduleBoard() {
    if (boardTimer) return;
    boardTimer = setTimeout(() => { boardTimer = null; loadBoard(); }, 100);
  }

  async function loadHistory() {
    const q = $("#history-q").value;
    const days = $("#history-days").value;
    let response;
    try {
      response = await fetch(`/api/history?q=${encodeURIComponent(q)}&days=${encodeURIComponent(days)}`,
        { credentials: "same-origin" });
    } catch (err) { return; }
    if (!response.ok) return;
    const data = await response.json();
    const body = $("#history");
    body.replaceChildren();
    const labels = [...document.querySelectorAll("table.history thead th")].map((th) => th.textContent);
    for (const order of data.orders) {
      const row = historyRow(order, data.days, labels);
      const last = el("td", {}, canReprint && !order.waiting ? reprintButton(order, row) : null);
      last.append(el("span", { class: "result" }));
      row.append(last);
      body.append(row);
    }
    if (!data.orders.length) {
      const text = q ? t("No order matches the search.") : data.days > 1 ? t("No order in that time.") : t("No order today.");
      body.append(el("tr", { class: "none" }, el("td", { text, colSpan: 7 })));
    }
    $("#history-more").hidden = data.orders.length < data.limit;
  }

  function notice(data) {
    const box = $("#notices");
    const text = t("Order {id}: Sinqro refused the decision ({code}): {reason}",
      { id: data.order_id ?? "", code: data.code, reason: data.message });
    const node = el("p", { class: "notice warn", text });
    box.prepend(node);
    setTimeout(() => node.remove(), 60000);
  }

  document.querySelectorAll("#virtual-panel [data-press]").forEach((button) => {
    button.addEventListener("click", async () => {
      const { data } = await post("/api/panel/press", {
        button: button.dataset.press, seconds: Number(button.dataset.seconds) });
      $("#virtual-panel-result").textContent = data.ok ? (data.result || "") : describeResult(data);
    });
  });
  $("#history-search").addEventListener("submit", (event) => { event.preventDefault(); loadHistory(); });
  $("#history-days").addEventListener("change", loadHistory);

  loadBoard();
  window.EdgedLive.start({
    snapshot: loadBoard,
    board: scheduleBoard,
    status: onStatus,
    notice,
  });
})();
