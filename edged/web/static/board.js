// The live order board: fetches /api/board, listens to /events (server-sent events) and
// sends decisions with the session's CSRF token. Text from orders only ever goes in
// through textContent, never as HTML. Words come from the box's catalog (t()); times,
// amounts and labels arrive already in the box's language and time zone.
"use strict";

(() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (sel, root = document) => root.querySelector(sel);
  const catalog = JSON.parse($("#i18n").textContent || "{}");
  const t = (text, values = {}) =>
    (catalog[text] || text).replace(/\{(\w+)\}/g, (m, key) => (key in values ? String(values[key]) : m));
  const baseTitle = document.title;
  const results = new Map(); // order id -> last result text, kept across re-renders
  const seenOrders = new Set(); // waiting orders this page already announced
  let alerting = []; // waiting orders announced and not marked seen yet
  let printers = [];
  let canReprint = false;
  let reasons = [];
  let online = true;
  let clockSkew = 0; // box time minus this device's time, seconds
  let chimeTimer = null;
  let wakeLock = null;

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key.startsWith("data-") || key.startsWith("aria-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

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
    if (fresh.length) {
      ring();
      clearInterval(chimeTimer);
      chimeTimer = setInterval(ring, 20000); // again until someone says "seen"
    }
  }

  $("#alert-seen").addEventListener("click", async () => {
    const ids = alerting.map((o) => o.id);
    alerting = [];
    $("#new-order-alert").hidden = true;
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
      const when = node.dataset.dueText;
      if (left < 0) dueNode.textContent = t("{time} · late {n} min", { time: when, n: -left });
      else if (left <= 90) dueNode.textContent = t("{time} · in {n} min", { time: when, n: left });
      else dueNode.textContent = t("{time} · {day}", { time: when, day: node.dataset.dueDay });
      dueNode.dataset.level = left < 0 ? "red" : left <= 10 ? "amber" : "ok";
    }
  }

  setInterval(() => document.querySelectorAll(".order").forEach(updateClock), 15000);

  // -- cards -------------------------------------------------------------------------------

  function decisionLabel(label) {
    return online ? label : t("Queue: {action}", { action: label });
  }

  async function decide(order, url, body, node) {
    const out = $(".result", node);
    out.textContent = t("Sending…");
    node.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    const { data } = await post(url, body);
    const text = describeResult(data);
    results.set(order.id, { text, ok: !!data.ok });
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

  function addLines(list, lines) {
    const add = (line, depth) => {
      const text = `${line.quantity ? line.quantity + "× " : ""}${line.label}`;
      const item = el("li", { text, class: depth ? "child" : "" });
      if (line.comment) item.append(el("span", { class: "line-note", text: line.comment }));
      list.append(item);
      line.children.forEach((child) => add(child, depth + 1));
    };
    lines.forEach((line) => add(line, 0));
  }

  function cancelForm(order, node) {
    const form = $(".cancel-form", node);
    const box = $(".reasons", form);
    reasons.forEach((reason, i) => {
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

  function card(order) {
    const node = $("#order-template").content.firstElementChild.cloneNode(true);
    node.dataset.orderId = String(order.id);
    node.dataset.seen = String(order.first_seen);
    node.dataset.due = String(order.due || "");
    node.dataset.dueText = order.due_text;
    node.dataset.dueDay = order.due_day;
    node.dataset.type = order.type;
    node.classList.add(order.waiting ? "waiting" : "active");
    $(".code", node).textContent = `#${order.code}`;
    $(".type", node).textContent = order.type_text;
    const pay = $(".pay", node);
    if (order.payment === "paid") {
      pay.textContent = `${t("PAID")} ${order.total_text}`;
      pay.dataset.payment = "paid";
    } else if (order.payment === "collect") {
      pay.textContent = `${t("CASH TO COLLECT")} ${order.to_collect_text}`;
      pay.dataset.payment = "collect";
    } else {
      // No payment info: the amount alone (nothing for a free reservation).
      pay.textContent = order.total ? order.total_text : "";
      pay.dataset.payment = "unknown";
    }
    $(".status", node).textContent = order.waiting ? "" : order.status_text;
    $(".name", node).textContent = [order.consumer, order.diners ? t("{n} diners", { n: order.diners }) : ""]
      .filter(Boolean).join(" · ");
    const phone = $(".phone", node);
    if (order.phone) {
      phone.textContent = order.phone;
      phone.href = `tel:${order.phone.replace(/[^+\d]/g, "")}`;
    } else phone.remove();
    $(".address", node).textContent = order.address;
    addLines($(".lines", node), order.lines);
    $(".note", node).textContent = order.comment;
    $(".pending", node).textContent = pendingText(order);
    const last = results.get(order.id);
    if (last) {
      $(".result", node).textContent = last.text;
      $(".result", node).dataset.ok = last.ok ? "true" : "false";
    }
    const actions = $(".actions", node);
    if (order.waiting) {
      const form = cancelForm(order, node);
      for (const action of order.actions) {
        const button = el("button", { type: "button", text: decisionLabel(action.label),
          class: action.kind === "cancel" ? "danger" : "accept" });
        button.dataset.kind = action.kind;
        if (action.delay) button.dataset.delay = String(action.delay);
        if (action.kind === "accept") {
          button.addEventListener("click", () => decide(order,
            `/api/orders/${order.id}/accept`, { delay: action.delay }, node));
        } else {
          button.addEventListener("click", () => {
            form.hidden = false;
            actions.hidden = true;
          });
        }
        actions.append(button);
      }
    } else {
      for (const step of order.statuses) {
        const button = el("button", { type: "button", text: decisionLabel(step.label), class: "step" });
        button.dataset.status = step.status;
        button.addEventListener("click", () => decide(order,
          `/api/orders/${order.id}/status`, { status: step.status }, node));
        actions.append(button);
      }
    }
    if (canReprint) actions.append(reprintButton(order, node));
    updateClock(node);
    return node;
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

  function fill(container, orders, emptyText) {
    // Keep a cancel reason being typed when the board refreshes under it.
    const typing = new Map();
    container.querySelectorAll(".order").forEach((node) => {
      const form = $(".cancel-form", node);
      if (form && !form.hidden) {
        const picked = $("input[name=reason]:checked", form);
        typing.set(node.dataset.orderId, { text: $("input[name=comment]", form).value, reason: picked ? picked.value : null });
      }
    });
    container.replaceChildren();
    if (!orders.length) container.append(el("p", { class: "empty", text: emptyText }));
    for (const order of orders) {
      const node = card(order);
      const kept = typing.get(String(order.id));
      if (kept) {
        const form = $(".cancel-form", node);
        form.hidden = false;
        $(".actions", node).hidden = true;
        $("input[name=comment]", form).value = kept.text;
        form.querySelectorAll("input[name=reason]").forEach((r) => { r.checked = r.value === kept.reason; });
      }
      container.append(node);
    }
  }

  // -- status and offline (the stream and the status line: live.js) -----------------------

  function onStatus(status) {
    const was = online;
    online = status.online;
    if (was !== online) scheduleBoard(); // the buttons say "queue" while offline
    $("#virtual-panel").hidden = !status.virtual_panel;
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
    reasons = data.cancel_reasons;
    window.EdgedLive.renderStatus(data.status);
    onStatus(data.status);
    fill($("#waiting"), data.waiting, t("No order waiting."));
    fill($("#active"), data.active, t("Nothing in progress."));
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

  let boardTimer = null;
  function scheduleBoard() {
    if (boardTimer) return;
    boardTimer = setTimeout(() => { boardTimer = null; loadBoard(); }, 100);
  }

  async function loadHistory() {
    const q = $("#history-q").value;
    let response;
    try {
      response = await fetch(`/api/history?q=${encodeURIComponent(q)}`, { credentials: "same-origin" });
    } catch (err) { return; }
    if (!response.ok) return;
    const data = await response.json();
    const body = $("#history");
    body.replaceChildren();
    for (const order of data.orders) {
      const row = el("tr", {},
        el("td", { text: order.seen_text }),
        el("td", { text: `#${order.code}` }),
        el("td", { text: order.type_text }),
        el("td", { text: order.status_text }),
        el("td", { text: [order.consumer, order.phone].filter(Boolean).join(" · ") }),
        el("td", { text: order.total_text }));
      const last = el("td", {}, canReprint ? reprintButton(order, row) : null);
      last.append(el("span", { class: "result" }));
      row.append(last);
      body.append(row);
    }
    if (!data.orders.length) body.append(el("tr", {}, el("td", { text: t("No order today."), colSpan: 7 })));
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

  loadBoard();
  window.EdgedLive.start({
    snapshot: loadBoard,
    board: scheduleBoard,
    status: onStatus,
    notice,
  });
})();
