// Security keys and passkeys. A form marked data-webauthn="create" or "get" asks its
// data-begin URL for options, lets the browser talk to the authenticator, puts the answer in
// the form's hidden fields and submits it; the server verifies everything. No inline script
// anywhere, so the Content-Security-Policy stays at script-src 'self'.
"use strict";

const supported = () =>
  typeof window.PublicKeyCredential === "function" &&
  typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function";

function explain(error) {
  switch (error && error.name) {
    case "NotAllowedError":
      return "The request was cancelled or timed out. Try again when you are ready to use your key.";
    case "InvalidStateError":
      return "This security key or passkey is already registered.";
    case "SecurityError":
      return "This page's address does not match the site's settings for security keys.";
    case "NotSupportedError":
      return "This security key does not support what this site asks for.";
    default:
      return "That did not work. Try again, or use another method.";
  }
}

function showError(form, text) {
  const box = form.querySelector("[data-webauthn-error]");
  if (box) {
    box.textContent = text;
    box.hidden = false;
  }
}

async function begin(form, extra) {
  const body = new URLSearchParams(extra);
  body.set("csrf", form.elements.csrf.value);
  const response = await fetch(form.dataset.begin, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
    body,
  });
  const data = await response.json().catch(() => null);
  if (!response.ok || !data) {
    const message = data && data.detail ? data.detail : "The server could not start this. Try again.";
    throw Object.assign(new Error(message), { name: "ServerError" });
  }
  return data;
}

// A pending autofill request must be cancelled before the button may ask again.
let pending = null;

async function run(form, mediation) {
  if (!supported()) {
    showError(form, "This browser does not support security keys or passkeys. Use another method or another browser.");
    return;
  }
  const extra = {};
  if (form.elements.kind) extra.kind = form.elements.kind.value;
  let data;
  try {
    data = await begin(form, extra);
  } catch (e) {
    // Autofill runs unasked: its failures stay quiet.
    if (!mediation) showError(form, e.message);
    return;
  }
  let credential;
  try {
    if (form.dataset.webauthn === "create") {
      credential = await navigator.credentials.create({
        publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(data.options.publicKey),
      });
    } else {
      const request = { publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(data.options.publicKey) };
      if (pending) pending.abort();
      pending = null;
      if (mediation) {
        request.mediation = mediation;
        pending = new AbortController();
        request.signal = pending.signal;
      }
      credential = await navigator.credentials.get(request);
    }
  } catch (e) {
    if (!mediation) showError(form, explain(e));
    return;
  }
  form.elements.ceremony.value = data.ceremony;
  form.elements.credential.value = JSON.stringify(credential.toJSON());
  form.submit();
}

for (const form of document.querySelectorAll("form[data-webauthn]")) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run(form);
  });
  // Passkey autofill: offer the passkeys in the username field's suggestions.
  if (form.dataset.conditional !== undefined && supported() &&
      typeof PublicKeyCredential.isConditionalMediationAvailable === "function") {
    PublicKeyCredential.isConditionalMediationAvailable().then((ok) => {
      if (ok) run(form, "conditional");
    });
  }
}
