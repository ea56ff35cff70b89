// The live order board: fetches /api/board, listens to /events (server-sent events) and
// sends decisions with the session's CSRF token. Text from orders only ever goes in
// through textContent, never as HTML.
"use strict";

(() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (sel, root = document) => root.querySelector(sel);
  const results = new Map(); // order id -> last result text, kept across re-renders
  let printers = [];
  let canReprint = false;

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
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
      return { status: 0, data: { ok: false, message: "The box did not answer." } };
    }
    if (response.status === 401) window.location.assign("/login");
    let data = {};
    try { data = await response.json(); } catch (err) { data = {}; }
    return { status: response.status, data };
  }

  function money(order) {
    return order.total_text || "";
  }

  function describeResult(data) {
    if (data.ok && data.state === "done") return "Done: Sinqro took it.";
    if (data.ok && data.state === "queued") return "Queued: it will be sent as soon as Sinqro answers.";
    if (data.ok) return "OK.";
    return `Refused: ${data.message || data.code || "error"}`;
  }

  async function decide(order, url, body, card) {
    const out = $(".result", card);
    out.textContent = "Sending…";
    card.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    const { data } = await post(url, body);
    const text = describeResult(data);
    results.set(order.id, text);
    out.textContent = text;
    card.querySelectorAll("button").forEach((b) => { b.disabled = false; });
    scheduleBoard();
  }

  function pendingText(order) {
    if (!order.pending.length) return "";
    return "Queued for Sinqro: " + order.pending.map((c) => {
      if (c.kind === "accept") return c.params.delay ? `accept +${c.params.delay} min` : "accept";
      if (c.kind === "status") return c.params.status;
      return c.kind;
    }).join(", ") + (order.pending[0].retrying ? ` (retrying: ${order.pending[0].retrying})` : "");
  }

  function card(order) {
    const node = $("#order-template").content.firstElementChild.cloneNode(true);
    node.dataset.orderId = String(order.id);
    node.classList.add(order.waiting ? "waiting" : "active");
    $(".code", node).textContent = `#${order.code}`;
    $(".type", node).textContent = order.type;
    $(".status", node).textContent = order.status_name || order.status;
    $(".when", node).textContent = order.asap ? "ASAP" : (order.execution_label || order.execution_time || "");
    const who = [order.consumer, order.market, money(order),
      order.diners ? `${order.diners} diners` : ""].filter(Boolean).join(" · ");
    $(".who", node).textContent = who;
    const lines = $(".lines", node);
    const addLine = (line, depth) => {
      const text = `${line.quantity ? line.quantity + "× " : ""}${line.label}` +
        (line.comment ? ` (${line.comment})` : "");
      lines.append(el("li", { text, class: depth ? "child" : "" }));
      line.children.forEach((child) => addLine(child, depth + 1));
    };
    order.lines.forEach((line) => addLine(line, 0));
    $(".comment", node).textContent = order.comment ? `“${order.comment}”` : "";
    $(".address", node).textContent = order.address;
    $(".pending", node).textContent = pendingText(order);
    $(".result", node).textContent = results.get(order.id) || "";
    const actions = $(".actions", node);
    const cancelForm = $(".cancel-form", node);
    if (order.waiting) {
      for (const action of order.actions) {
        const button = el("button", { type: "button", text: action.label,
          class: action.kind === "cancel" ? "danger" : "accept" });
        button.dataset.kind = action.kind;
        if (action.delay) button.dataset.delay = String(action.delay);
        if (action.color) button.style.borderColor = action.color;
        if (action.kind === "accept") {
          button.addEventListener("click", () => decide(order,
            `/api/orders/${order.id}/accept`, { delay: action.delay }, node));
        } else {
          button.addEventListener("click", () => {
            cancelForm.hidden = false;
            actions.hidden = true;
            $("input", cancelForm).focus();
          });
        }
        actions.append(button);
      }
      if (!order.actions_live) {
        actions.append(el("small", { text: "Sinqro not reachable: the choice will wait in the queue." }));
      }
      cancelForm.addEventListener("submit", (event) => {
        event.preventDefault();
        const input = $("input", cancelForm);
        const error = $(".field-error", cancelForm);
        const comment = input.value.trim();
        if (!comment) { // Sinqro refuses a cancel without a comment; so do we, early.
          error.hidden = false;
          input.setAttribute("aria-invalid", "true");
          input.focus();
          return;
        }
        error.hidden = true;
        decide(order, `/api/orders/${order.id}/cancel`, { comment }, node);
      });
      $(".cancel-back", cancelForm).addEventListener("click", () => {
        cancelForm.hidden = true;
        actions.hidden = false;
      });
    } else {
      for (const step of order.statuses) {
        const button = el("button", { type: "button", text: step.label, class: "step" });
        button.dataset.status = step.status;
        button.addEventListener("click", () => decide(order,
          `/api/orders/${order.id}/status`, { status: step.status }, node));
        actions.append(button);
      }
    }
    if (canReprint) actions.append(reprintButton(order, node));
    return node;
  }

  function reprintButton(order, node) {
    const wrap = el("span", { class: "reprint" });
    let select = null;
    if (printers.length > 1) {
      select = el("select", { "aria-label": "Printer" });
      select.append(el("option", { value: "", text: "all printers" }));
      printers.forEach((name) => select.append(el("option", { value: name, text: name })));
      wrap.append(select);
    }
    const button = el("button", { type: "button", text: "Reprint", class: "reprint-button" });
    button.addEventListener("click", async () => {
      const { data } = await post(`/api/orders/${order.id}/reprint`,
        { printer: select ? select.value : "" });
      const text = data.ok ? "Reprint sent to the printer." : `Refused: ${data.message}`;
      results.set(order.id, text);
      $(".result", node).textContent = text;
    });
    wrap.append(button);
    return wrap;
  }

  function fill(container, orders, emptyText) {
    // Keep a cancel comment being typed when the board refreshes under it.
    const typing = new Map();
    container.querySelectorAll(".order").forEach((node) => {
      const form = $(".cancel-form", node);
      if (form && !form.hidden) typing.set(node.dataset.orderId, $("input", form).value);
    });
    const focusedId = document.activeElement && document.activeElement.closest
      ? (document.activeElement.closest(".order") || {}).dataset : null;
    container.replaceChildren();
    if (!orders.length) container.append(el("p", { class: "empty", text: emptyText }));
    for (const order of orders) {
      const node = card(order);
      const key = String(order.id);
      if (typing.has(key)) {
        const form = $(".cancel-form", node);
        form.hidden = false;
        $(".actions", node).hidden = true;
        $("input", form).value = typing.get(key);
        if (focusedId && focusedId.orderId === key) $("input", form).focus();
      }
      container.append(node);
    }
  }

  function pill(label, value, tone, id) {
    const node = el("span", { class: `pill ${tone}` });
    if (id) node.id = id;
    if (label) node.append(el("span", { class: "pill-label", text: label }));
    node.append(el("span", { class: "pill-value", text: String(value) }));
    return node;
  }

  function renderStatus(status) {
    const bar = $("#status-bar");
    if (!bar) return;
    const s = status.state;
    const pills = [
      pill("Cloud", s.link, s.link === "online" ? "ok" : "warn", "st-link"),
      pill("Queued", s.queued_commands || 0, s.queued_commands ? "warn" : "ok", "st-queued"),
    ];
    for (const [name, health] of Object.entries(status.printers).sort()) {
      const value = (health && health.state) || "unknown";
      pills.push(pill(`Printer ${name}`, value, value === "online" ? "ok" : "warn"));
    }
    for (const [key, label] of [["panel.led", "LED"], ["panel.buzzer", "Buzzer"],
      ["bridge.mqtt", "MQTT"], ["bridge.serial", "Serial"]]) {
      if (key in s) pills.push(pill(label, s[key], s[key] === "offline" ? "warn" : "ok"));
    }
    bar.replaceChildren(...pills);
    $("#virtual-panel").hidden = !status.virtual_panel;
  }

  async function loadBoard() {
    let response;
    try {
      response = await fetch("/api/board", { credentials: "same-origin" });
    } catch (err) { return; }
    if (response.status === 401) { window.location.assign("/login"); return; }
    if (!response.ok) return;
    const data = await response.json();
    printers = data.printers;
    canReprint = data.can_reprint;
    renderStatus(data.status);
    fill($("#waiting"), data.waiting, "No order waiting.");
    fill($("#active"), data.active, "Nothing in progress.");
    $("#waiting-count").textContent = String(data.waiting.length);
    $("#active-count").textContent = String(data.active.length);
    document.body.dataset.boardLoaded = "true";
    loadHistory();
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
        el("td", { text: `#${order.code}` }),
        el("td", { text: order.type }),
        el("td", { text: order.status_name || order.status }),
        el("td", { text: order.consumer }),
        el("td", { text: money(order) }),
        el("td", { text: new Date(order.first_seen * 1000).toLocaleTimeString() }));
      const last = el("td", {}, canReprint ? reprintButton(order, row) : null);
      last.append(el("span", { class: "result" }));
      row.append(last);
      body.append(row);
    }
    if (!data.orders.length) body.append(el("tr", {}, el("td", { text: "No order today.", colSpan: 7 })));
  }

  function notice(data) {
    const box = $("#notices");
    const text = `Order ${data.order_id ?? ""}: Sinqro refused (${data.code}) ${data.message}`;
    const node = el("p", { class: "notice warn", text });
    box.prepend(node);
    setTimeout(() => node.remove(), 15000);
  }

  function connect() {
    const source = new EventSource("/events");
    source.addEventListener("board", scheduleBoard);
    source.addEventListener("status", (e) => renderStatus(JSON.parse(e.data)));
    source.addEventListener("notice", (e) => notice(JSON.parse(e.data)));
    source.addEventListener("open", () => { document.body.dataset.live = "true"; });
    source.addEventListener("error", () => { document.body.dataset.live = "false"; });
  }

  document.querySelectorAll("#virtual-panel [data-press]").forEach((button) => {
    button.addEventListener("click", async () => {
      const { data } = await post("/api/panel/press", {
        button: button.dataset.press, seconds: Number(button.dataset.seconds) });
      $("#virtual-panel-result").textContent = data.ok ? (data.result || "pressed") : data.message;
    });
  });
  $("#history-search").addEventListener("submit", (event) => { event.preventDefault(); loadHistory(); });

  loadBoard();
  connect();
})();
