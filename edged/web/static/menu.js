// The Menu page: the catalog the box keeps (/api/menu), searched and filtered, with one
// tap per item to mark it sold out (until the time chosen above the list) or back on.
// Each tap is an outbox command: the row says queued, retrying, done (Sinqro has it) or
// refused with Sinqro's reason, asking /api/menu/changes/<id> until it knows. Names and
// times arrive from the box; text from the menu goes in through textContent only.
"use strict";

(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const catalog = JSON.parse($("#i18n").textContent || "{}");
  const t = (text, values = {}) =>
    (catalog[text] || text).replace(/\{(\w+)\}/g, (m, key) => (key in values ? String(values[key]) : m));
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const list = $("#menu-list");
  const search = $("#menu-q");
  const section = $("#menu-section");
  const notice = $("#menu-notice");
  const changes = new Map(); // "kind:id" -> last change this page heard of
  let loading = null;

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  function changeText(change) {
    const what = change.available ? t("Back on") : t("Sold out");
    if (change.state === "done") return t("{what}: done, Sinqro has it.", { what });
    if (change.state === "queued") return t("{what}: queued, sent as soon as Sinqro answers.", { what });
    if (change.state === "retrying") return t("{what}: not sent yet, trying again.", { what });
    return t("{what}: refused by Sinqro: {reason}", {
      what, reason: change.message || change.code || "?",
    });
  }

  function until() {
    const chosen = document.querySelector('input[name="until"]:checked');
    return chosen ? chosen.value : "";
  }

  async function send(item) {
    const key = `${item.kind}:${item.id}`;
    const body = { kind: item.kind, id: item.id, available: !item.available, until: item.available ? until() : "" };
    changes.set(key, { state: "queued", available: body.available, pending: true });
    draw(lastData);
    let data;
    try {
      const response = await fetch("/api/menu/availability", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(body),
      });
      if (response.status === 401) window.location.assign("/login");
      data = await response.json();
    } catch (err) {
      data = { ok: false, state: "refused", available: body.available,
        message: t("The box did not answer. Check its power and network, then try again.") };
    }
    if (!data.state) data = { ...data, state: "refused", available: body.available };
    changes.set(key, data);
    await follow(key, data);
  }

  // Ask for a change's outcome until Sinqro took it or refused it.
  async function follow(key, change) {
    let current = change;
    while (current.command_id && (current.state === "queued" || current.state === "retrying")) {
      draw(lastData);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      try {
        const response = await fetch(`/api/menu/changes/${current.command_id}`, { credentials: "same-origin" });
        if (response.ok) current = await response.json();
      } catch (err) { /* the box is away: keep saying queued and ask again */ }
      changes.set(key, current);
    }
    await load();
  }

  function row(item, extra) {
    const key = `${item.kind}:${item.id}`;
    const change = changes.get(key) || item.change;
    const state = item.available ? t("On sale") : t("Sold out");
    const name = el("span", { class: "name", text: item.name });
    const facts = el("span", { class: "facts" });
    if (extra) facts.append(el("small", { text: extra }), " ");
    facts.append(el("span", { class: item.available ? "tag ok" : "tag warn", text: state }));
    if (!item.available && item.back_at_text) {
      facts.append(" ", el("small", { class: "back-at", text: t("back on at {time}", { time: item.back_at_text }) }));
    }
    const button = el("button", {
      type: "button",
      class: item.available ? "danger toggle" : "accept toggle",
      text: item.available ? t("Sold out") : t("Back on"),
    });
    if (change && change.pending) button.disabled = true;
    button.addEventListener("click", () => send(item));
    const node = el("li", { class: "menu-item", "data-kind": item.kind, "data-id": String(item.id),
      "data-available": item.available ? "true" : "false" },
      el("div", { class: "what" }, name, facts), button);
    if (change && !change.pending) {
      node.append(el("p", { class: change.state === "refused" ? "change refused" : "change",
        role: "status", "data-state": change.state, text: changeText(change) }));
    } else if (change) {
      node.append(el("p", { class: "change", role: "status", "data-state": "sending", text: t("Sending…") }));
    }
    return node;
  }

  let lastData = null;
  function draw(data) {
    if (!data) return;
    const nodes = [];
    if (data.products.length) {
      nodes.push(el("h2", { text: t("Dishes") }));
      nodes.push(el("ul", { class: "items" }, ...data.products.map((p) => row(p, p.variant_of))));
    }
    for (const category of data.categories) {
      if (!category.options.length) continue;
      nodes.push(el("h2", { text: category.name }));
      nodes.push(el("ul", { class: "items" }, ...category.options.map((o) => row(o, ""))));
    }
    if (!nodes.length) nodes.push(el("p", { class: "empty", text: data.q ? t("Nothing matches.") : t("The menu is empty: the box has not read it from Sinqro yet.") }));
    list.replaceChildren(...nodes);
    $("#menu-summary").textContent = t("{n} items sold out", { n: data.unavailable });
    notice.hidden = data.paired;
    notice.textContent = data.paired ? "" : t("The box is not connected to Sinqro: nothing can be changed.");
  }

  function fillSections(sections) {
    if (section.options.length > 1) return;
    for (const s of sections) section.append(el("option", { value: s.id, text: s.name }));
  }

  async function load() {
    const params = new URLSearchParams({ q: search.value, category: section.value });
    const asked = params.toString();
    loading = asked;
    try {
      const response = await fetch(`/api/menu?${asked}`, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.status === 401) window.location.assign("/login");
      const data = await response.json();
      if (loading !== asked || !response.ok) return;
      fillSections(data.sections || []);
      lastData = data;
      draw(data);
    } catch (err) {
      notice.hidden = false;
      notice.textContent = t("The box did not answer. Check its power and network, then try again.");
    }
  }

  $("#menu-search").addEventListener("submit", (event) => { event.preventDefault(); load(); });
  search.addEventListener("input", () => load());
  section.addEventListener("change", () => load());
  load();
})();
