// The upload page (web/pages/upload.py): send the chosen zip as the body of
// POST /api/v1/uploads with the session's CSRF token; show the answer with
// textContent only (member names and messages are untrusted text).
"use strict";
(function () {
  const form = document.getElementById("upload-form");
  if (!form) return;
  const status = document.getElementById("upload-status");
  const out = document.getElementById("upload-result");

  function el(tag, text) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  function list(title, items, line) {
    if (!items.length) return;
    out.appendChild(el("h2", title));
    const ul = el("ul");
    for (const item of items) {
      const li = el("li");
      line(li, item);
      ul.appendChild(li);
    }
    out.appendChild(ul);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = form.elements.archive.files[0];
    if (!file) return;
    out.replaceChildren();
    status.textContent = "uploading and analysing " + file.name + " …";
    const site = encodeURIComponent(form.elements.site_id.value);
    let answer;
    try {
      const r = await fetch("/api/v1/uploads?site_id=" + site, {
        method: "POST", body: file, credentials: "same-origin",
        headers: {"Content-Type": "application/zip", "X-CSRF-Token": form.dataset.csrf}});
      answer = await r.json();
      if (!r.ok) {
        status.textContent = "refused (" + r.status + "): " + answer.error;
        return;
      }
    } catch (err) {
      status.textContent = "the upload failed: " + err;
      return;
    }
    status.textContent = answer.stored + " instance(s) stored, " + answer.duplicates +
      " already kept, " + answer.rejected.length + " rejected, " + answer.skipped.length +
      " skipped, of " + answer.entries + " member(s).";
    list("Jobs", answer.jobs, (li, job) => {
      li.appendChild(el("span", "job " + job.id + ": " + job.state +
                        (job.error ? " (" + job.error + ")" : "") + " "));
      for (const rid of job.result_ids) {
        const a = el("a", "result " + rid);
        a.href = "/results/" + encodeURIComponent(rid);
        li.appendChild(a);
        li.appendChild(document.createTextNode(" "));
      }
    });
    list("Rejected", answer.rejected, (li, s) => { li.textContent = s.entry + ": " + s.reason; });
    list("Skipped", answer.skipped, (li, s) => { li.textContent = s.entry + ": " + s.reason; });
  });
})();
