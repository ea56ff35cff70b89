// First visit and forgotten password: prove access with the box's ACCEPT button.
// The page opens a 60 s window, then asks the box every second whether it was pressed.
"use strict";

(() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const start = document.getElementById("press-start");
  const out = document.getElementById("press-state");
  const codeProof = document.getElementById("code-proof");
  let timer = null;

  function show(state, seconds) {
    document.getElementById("press-proof").dataset.state = state;
    if (state === "proven") {
      out.textContent = out.dataset.proven;
      start.hidden = true;
      codeProof.hidden = true;
      document.getElementById("new-password").focus();
    } else if (state === "waiting") {
      out.textContent = out.dataset.waiting.replace("{n}", String(seconds));
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
    show(data.state, data.seconds);
    if (data.state !== "waiting") { clearInterval(timer); timer = null; }
  }

  start.addEventListener("click", async () => {
    const response = await fetch("/setup/press", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: "{}",
    });
    if (!response.ok) return;
    const data = await response.json();
    show(data.state, data.seconds);
    clearInterval(timer);
    timer = setInterval(poll, 1000);
  });
})();
