// AuthToolkit Keys console: conveniences on top of plain forms. Every flow
// works without this script.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Copy buttons: data-copy names the element whose text is copied.
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      const status = document.getElementById("copy-status");
      try {
        await navigator.clipboard.writeText(source.textContent.trim());
        if (status) status.textContent = "Copied. Store it somewhere safe now.";
      } catch (_) {
        if (status) status.textContent = "Copy failed; select the text and copy it by hand.";
      }
    });
  }

  // After a one-time reveal, a reload must not post the form again: the
  // history entry becomes a plain page load of the same address.
  if (document.getElementById("secret")) {
    history.replaceState(null, "", window.location.href);
    // Should the browser keep this page for Back anyway, it keeps it
    // without the secret.
    window.addEventListener("pagehide", () => {
      for (const node of document.querySelectorAll("#secret, #reveal")) node.remove();
    });
  }

  // Page Help: the widget's form, answered in place.
  const help = document.getElementById("help-form");
  if (help) {
    const out = document.getElementById("help-answer");
    const show = (question, body, hub) => {
      out.replaceChildren();
      const asked = document.createElement("p");
      asked.className = "help-question";
      asked.textContent = question;
      if (hub) {
        const badge = document.createElement("span");
        badge.className = "badge info";
        badge.textContent = "Knowledge Hub";
        asked.append(" ", badge);
      }
      const text = document.createElement("p");
      text.className = body.in_scope ? "help-text" : "help-text fallback";
      text.textContent = body.answer;
      out.append(asked, text);
      if (body.sources.length > 0) {
        const sources = document.createElement("p");
        sources.className = "help-sources";
        sources.append("Source: ");
        for (const source of body.sources) {
          const badge = document.createElement("span");
          badge.className = "badge info";
          badge.textContent = source.label;
          sources.append(badge, " ");
        }
        out.append(sources);
      }
      if (body.related_surface) {
        const p = document.createElement("p");
        const link = document.createElement("a");
        link.className = "help-related";
        link.href = body.related_surface.href;
        link.textContent = "Open related surface: " + body.related_surface.label;
        p.append(link);
        out.append(p);
      }
    };
    help.addEventListener("submit", async (event) => {
      const submitter = event.submitter;
      const question = submitter && submitter.name === "suggested"
        ? submitter.value
        : help.querySelector("#help-question").value;
      if (!question.trim()) {
        event.preventDefault();
        return;
      }
      event.preventDefault();
      const data = new URLSearchParams(new FormData(help));
      data.set("question", question);
      data.delete("suggested");
      try {
        const response = await fetch(help.action, {
          method: "POST",
          headers: { Accept: "application/json" },
          body: data,
          credentials: "same-origin",
        });
        if (!response.ok) throw new Error(String(response.status));
        show(question, await response.json(), data.get("mode") === "hub");
      } catch (_) {
        help.submit();
      }
    });
  }

  const form = document.getElementById("create-key");
  if (!form) return;
  const scopes = [...form.querySelectorAll("li.scope")];
  const review = document.getElementById("blocked-review");

  const updateBlocked = () => {
    const blocked = scopes
      .map((li) => li.querySelector("input"))
      .filter((input) => input.checked && !input.disabled && input.dataset.blockedReason);
    review.replaceChildren();
    const lead = document.createElement("p");
    if (blocked.length === 0) {
      lead.className = "alert ok";
      lead.textContent = "None of the chosen scopes is blocked by Commerce today.";
      review.append(lead);
      return;
    }
    lead.className = "alert warning";
    lead.textContent = "These chosen scopes would be blocked today, even though the key carries them:";
    const list = document.createElement("ul");
    list.className = "blocked-list";
    list.id = "blocked-scopes";
    for (const input of blocked) {
      const item = document.createElement("li");
      const code = document.createElement("code");
      code.textContent = input.value;
      item.append(code, ": " + input.dataset.blockedReason);
      list.append(item);
    }
    review.append(lead, list);
  };

  // Choosing a kind offers only the scopes it allows, preselects its
  // defaults, and shows the danger confirmation for Service Role Keys.
  const applyKind = (kind, resetDefaults) => {
    for (const li of scopes) {
      const input = li.querySelector("input");
      const allowed = li.dataset.kinds.split(" ").includes(kind);
      input.disabled = !allowed;
      li.hidden = !allowed;
      if (resetDefaults) {
        input.checked = allowed && li.dataset.defaultFor.split(" ").includes(kind);
      } else if (!allowed) {
        input.checked = false;
      }
    }
    for (const item of form.querySelectorAll(".service-role-only")) {
      item.hidden = kind !== "service_role";
      if (item.hidden) item.querySelector("input").checked = false;
    }
    updateBlocked();
  };

  for (const radio of form.querySelectorAll("input[name=kind]")) {
    radio.addEventListener("change", () => applyKind(radio.value, true));
  }
  for (const li of scopes) {
    li.querySelector("input").addEventListener("change", updateBlocked);
  }
  const chosen = form.querySelector("input[name=kind]:checked");
  if (chosen) applyKind(chosen.value, false);
});
