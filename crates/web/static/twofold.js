// The only script on Twofold's pages: copy buttons and printing. No inline script anywhere,
// so the Content-Security-Policy can stay at script-src 'self'.
"use strict";
document.addEventListener("click", (event) => {
  const copy = event.target.closest("[data-copy]");
  if (copy) {
    const source = document.getElementById(copy.dataset.copy);
    if (source && navigator.clipboard) {
      navigator.clipboard.writeText(source.textContent.replace(/\s+/g, "")).then(() => {
        copy.textContent = "Copied";
      });
    }
    return;
  }
  if (event.target.closest("[data-print]")) {
    window.print();
  }
});

// The second step waiting for an emailed link: ask the server every two seconds whether the
// link was approved (then finish signing in here) or whether the message could not be sent.
const waiting = document.querySelector("[data-poll]");
if (waiting) {
  const poll = () => {
    fetch(waiting.dataset.poll, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : null))
      .then((st) => {
        if (!st) return;
        const proceed = document.getElementById("link-continue");
        if (st.approved && proceed) {
          proceed.submit();
          return;
        }
        if (st.delivery === "failed") {
          const failed = document.getElementById("delivery-failed");
          if (failed) failed.hidden = false;
          if (!proceed) return;
        }
        setTimeout(poll, 2000);
      })
      .catch(() => setTimeout(poll, 5000));
  };
  setTimeout(poll, 2000);
}

// Handing the browser back to an application after a form: a redirect would break the CSP's
// form-action 'self' (browsers check it on every redirect of a form's navigation), so the page
// shows a link and follows it at once.
const handBack = document.querySelector("[data-continue]");
if (handBack) {
  window.location.replace(handBack.href);
}
