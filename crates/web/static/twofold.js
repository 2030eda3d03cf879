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
