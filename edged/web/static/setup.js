// First visit and forgotten password: prove access with both buttons of the box held
// together, then let go (a gesture no order decision uses). The page opens a 60 s window, then asks
// the box every second whether it came, how many orders wait, and whether a press went
// to an order instead (that proves nothing, and the page says so).
"use strict";

(() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const start = document.getElementById("press-start");
  const out = document.getElementById("press-state");
  const waitingNote = document.getElementById("orders-waiting");
  const elsewhere = document.getElementById("press-elsewhere");
  const codeProof = document.getElementById("code-proof");
  let timer = null;

  function show(data) {
    const state = data.state;
    document.getElementById("press-proof").dataset.state = state;
    const waiting = data.waiting_orders || 0;
    waitingNote.hidden = !waiting || state === "proven";
    waitingNote.textContent = waitingNote.dataset.text.replace("{n}", String(waiting));
    elsewhere.hidden = !data.went_elsewhere;
    elsewhere.textContent = data.went_elsewhere || "";
    if (state === "proven") {
      out.textContent = out.dataset.proven;
      start.hidden = true;
      codeProof.hidden = true;
      document.getElementById("new-password").focus();
    } else if (state === "busy") {
      out.textContent = out.dataset.busy.replace("{n}", String(data.seconds));
      start.hidden = false;
    } else if (state === "waiting") {
      out.textContent = out.dataset.waiting.replace("{n}", String(data.seconds));
      start.hidden = true;
    } else {
      out.textContent = out.dataset.idle;
      start.hidden = false;
    }
  }

  async function poll() {
    let data;
    try {
      const response = await fetch("/setup/press/state", { credentials: "same-origin" });
      data = await response.json();
    } catch (err) {
      return;
    }
    show(data);
    if (data.state !== "waiting") { clearInterval(timer); timer = null; }
  }

  start.addEventListener("click", async () => {
    let response;
    try {
      response = await fetch("/setup/press", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: "{}",
      });
    } catch (err) {
      return;
    }
    let data;
    try { data = await response.json(); } catch (err) { return; }
    show(data);
    if (!response.ok) return;
    clearInterval(timer);
    timer = setInterval(poll, 1000);
  });
})();
