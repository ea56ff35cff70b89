// Every page: forms marked data-confirm ask before they act (disconnect, remove a printer).
"use strict";

document.querySelectorAll("form[data-confirm]").forEach((form) => {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
});

// Setup: "Find printers" lists the printers the box sees; a tap fills name and address.
(() => {
  const button = document.getElementById("find-printers");
  if (!button) return;
  const form = document.getElementById("add-printer-form");
  const message = document.getElementById("found-message");
  const list = document.getElementById("found-printers");
  button.addEventListener("click", async () => {
    message.textContent = message.dataset.searching;
    list.replaceChildren();
    let data;
    try {
      const response = await fetch("/api/printers/found", { credentials: "same-origin" });
      data = await response.json();
    } catch (err) {
      message.textContent = "";
      return;
    }
    const notes = [];
    if (data.message) notes.push(data.message);
    notes.push(data.printers.length ? message.dataset.pick : message.dataset.none);
    message.textContent = notes.join(" ");
    for (const printer of data.printers) {
      const pick = document.createElement("button");
      pick.type = "button";
      pick.textContent = `${printer.name} · ${printer.address}`;
      pick.addEventListener("click", () => {
        form.querySelector("input[name$='.name']").value = printer.name;
        form.querySelector("input[name$='.uri']").value = printer.address;
      });
      list.append(pick);
    }
  });
})();
