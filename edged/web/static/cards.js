// Drawing the board's orders: the facts of an order card and a history row, from the
// board's JSON. Text from orders only ever goes in through textContent, never as HTML.
// Shared with board.js as window.edgedCards (this file loads first).
"use strict";

window.edgedCards = (() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const catalog = JSON.parse($("#i18n").textContent || "{}");
  const t = (text, values = {}) =>
    (catalog[text] || text).replace(/\{(\w+)\}/g, (m, key) => (key in values ? String(values[key]) : m));

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

  function allergyMark() {
    return el("strong", { class: "allergy-mark", text: t("ALLERGY") });
  }

  // soldOut (the board only): said(item) -> the change's words or "", tap(item) marks it.
  function addLines(list, lines, soldOut) {
    const add = (line, depth) => {
      const text = `${line.quantity ? line.quantity + "× " : ""}${line.label}`;
      const item = el("li", { text, class: depth ? "child" : "" });
      if (soldOut && line.item) {
        const said = soldOut.said(line.item);
        if (said) {
          item.append(" ", el("small", { class: "sold-out-state", role: "status", text: said }));
        } else {
          const button = el("button", { type: "button", class: "sold-out", text: t("Sold out") });
          button.dataset.kind = line.item.kind;
          button.dataset.id = String(line.item.id);
          button.addEventListener("click", () => soldOut.tap(line.item));
          item.append(button);
        }
      }
      if (line.comment) {
        const note = el("span", { class: line.allergy ? "line-note allergy" : "line-note" });
        if (line.allergy) note.append(allergyMark(), " ");
        note.append(line.comment);
        item.append(note);
      }
      list.append(item);
      line.children.forEach((child) => add(child, depth + 1));
    };
    lines.forEach((line) => add(line, 0));
  }

  function orderState(order) {
    if (order.pending.length) return "queued";
    return order.waiting ? "waiting" : "active";
  }

  // What the card says about the order: everything but its buttons and outcomes.
  function drawFacts(node, order, soldOut) {
    $(".code", node).textContent = `#${order.code}`;
    $(".type", node).textContent = order.type_text;
    $(".where", node).textContent = order.table || order.consumer;
    if (order.comment_allergy || order.lines.some(function hasAllergy(l) {
      return l.allergy || l.children.some(hasAllergy);
    })) $(".flag", node).append(allergyMark());
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
    if (order.customer_time_text) {
      const time = order.customer_time_text;
      $(".customer-time", node).textContent = order.type === "delivery"
        ? t("Delivery to the customer at {time}", { time }) : t("Customer's time: {time}", { time });
    }
    if (order.table) $(".table", node).textContent = t("Table: {table}", { table: order.table });
    $(".name", node).textContent = [order.consumer, order.diners ? t("{n} diners", { n: order.diners }) : ""]
      .filter(Boolean).join(" · ");
    const phone = $(".phone", node);
    if (order.phone) {
      phone.textContent = order.phone;
      phone.href = `tel:${order.phone.replace(/[^+\d]/g, "")}`;
    } else phone.remove();
    $(".address", node).textContent = order.address;
    $(".courier", node).textContent = order.couriers.map((c) => [
      c.company ? t("Courier: {name}", { name: c.company }) : "",
      c.driver ? t("Driver: {name}", { name: c.driver }) : "",
    ].filter(Boolean).join(" · ")).join(" / ");
    addLines($(".lines", node), order.lines, soldOut);
    const note = $(".note", node);
    if (order.comment) {
      if (order.comment_allergy) { note.classList.add("allergy"); note.append(allergyMark(), " "); }
      note.append(order.comment);
    }
  }

  // A history row: time (with the day when more than today is listed), code, type, status,
  // customer, total; each cell keeps its column's name for the phone's stacked layout.
  function historyRow(order, days, labels) {
    const when = el("td", { text: order.seen_text });
    if (days > 1) when.prepend(el("span", { class: "day", text: `${order.seen_day} ` }));
    const row = el("tr", {}, when,
      el("td", { text: `#${order.code}` }),
      el("td", { text: order.type_text }),
      el("td", { text: order.status_text }),
      el("td", { text: [order.consumer, order.phone].filter(Boolean).join(" · ") }),
      el("td", { text: order.total_text }));
    row.querySelectorAll("td").forEach((td, i) => { if (labels[i]) td.dataset.label = labels[i]; });
    return row;
  }

  return { $, t, el, allergyMark, addLines, orderState, drawFacts, historyRow };
})();
