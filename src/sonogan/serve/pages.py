"""The reader study's pages, kept as Python strings so the wheel ships them without package data.

The rater page is a fixed shell: it holds no study data at all; ``rater.js`` asks the API for
the rater's state (progress and the opaque key of the next image) and posts each answer,
showing the next image only after the server has committed the answer. The admin page is
rendered on the server from the study summary (every value HTML-escaped).

Keyboard: 1-5 realism, R real, S synthetic, C class list, M comment, Enter save and next,
Esc leave the class list or the comment.

Example:
    >>> "rater.js" in RATER_HTML and "ground" not in RATER_HTML
    True
"""

from __future__ import annotations

import html
from typing import Any

from sonogan.report.html import Table, table_html
from sonogan.study.report import summary_tables

STYLE_CSS = """
[hidden] { display: none !important; }
body { font-family: system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d2430; }
main { max-width: 1100px; margin: 0 auto; padding: 1rem 1.5rem; }
header { display: flex; align-items: center; gap: 1rem; flex-wrap: wrap; }
h1 { font-size: 1.3rem; margin: 0.4rem 0; flex: 1; }
progress { width: 220px; height: 0.9rem; }
#rate { display: flex; gap: 1.5rem; align-items: flex-start; margin-top: 1rem; }
figure { margin: 0; background: #000; padding: 8px; border-radius: 6px; min-width: 256px; min-height: 256px;
         display: flex; align-items: center; justify-content: center; }
figure img { max-width: 512px; max-height: 512px; width: 512px; height: auto; image-rendering: auto; }
form { display: flex; flex-direction: column; gap: 0.8rem; min-width: 300px; }
fieldset { border: 1px solid #c8ccd4; border-radius: 6px; background: #fff; }
legend { font-weight: 600; }
fieldset label { margin-right: 0.7rem; white-space: nowrap; }
.hint { font-size: 0.8rem; color: #5b6473; }
select, textarea { width: 100%; font: inherit; }
textarea { min-height: 3.5rem; }
button { font: inherit; padding: 0.5rem 1rem; background: #2456a6; color: #fff; border: 0; border-radius: 6px; }
button:disabled { background: #8a9bb8; }
kbd { border: 1px solid #aab; border-bottom-width: 2px; border-radius: 3px; padding: 0 0.25rem; font-size: 0.8rem;
      background: #fafafa; color: #333; }
#status { min-height: 1.2rem; color: #5b6473; margin: 0; }
table { border-collapse: collapse; margin: 0.6rem 0 1.4rem; background: #fff; }
caption { text-align: left; font-weight: 600; padding: 0.3rem 0; }
th, td { border: 1px solid #d0d4dc; padding: 0.3rem 0.6rem; text-align: left; font-size: 0.9rem; }
th { background: #e8ebf0; }
"""

RATER_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><title>Reader study</title><link rel="stylesheet" href="/static/style.css">
</head><body><main>
<header><h1 id="title">Reader study</h1><span id="progress-text" aria-live="polite"></span>
<progress id="progress" max="1" value="0"></progress></header>
<section id="rate" hidden>
<figure><img id="image" alt="ultrasound image to rate"></figure>
<form id="form" autocomplete="off">
<fieldset><legend>Realism <kbd>1</kbd>&ndash;<kbd>5</kbd></legend>
<label><input type="radio" name="realism" value="1"> 1</label><label><input type="radio" name="realism" value="2"> 2</label>
<label><input type="radio" name="realism" value="3"> 3</label><label><input type="radio" name="realism" value="4"> 4</label>
<label><input type="radio" name="realism" value="5"> 5</label>
<div class="hint">1 = clearly artificial &middot; 5 = cannot be told from a real scan</div></fieldset>
<fieldset><legend>Real or synthetic?</legend>
<label><input type="radio" name="source_call" value="real"> real <kbd>R</kbd></label>
<label><input type="radio" name="source_call" value="synthetic"> synthetic <kbd>S</kbd></label></fieldset>
<label>Class (optional) <kbd>C</kbd><select id="class" name="class_call"><option value="">&mdash;</option></select></label>
<label>Comment (optional) <kbd>M</kbd><textarea id="comment" name="comment" maxlength="2000"></textarea></label>
<button type="submit" id="next">Save and next <kbd>Enter</kbd></button>
<p id="status" role="status"></p>
<div class="hint"><kbd>Esc</kbd> leaves the class list or the comment. Answers are saved one by one:
you can close this page and open your link again later to continue.</div>
</form></section>
<section id="done" hidden><h2>All images rated &mdash; thank you.</h2><p>Every answer is saved. You can close this page.</p></section>
</main><script src="/static/rater.js"></script></body></html>
"""

RATER_JS = r"""
"use strict";
const base = location.pathname.replace(/\/+$/, "");
const $ = (id) => document.getElementById(id);
const form = $("form");
let current = null;
let busy = false;

function say(text) { $("status").textContent = text; }

function show(state) {
  $("title").textContent = state.study;
  $("progress").max = state.total;
  $("progress").value = state.answered;
  $("progress-text").textContent = state.answered + " / " + state.total + " rated";
  if ($("class").options.length === 1) {
    for (const name of state.classes) { $("class").add(new Option(name, name)); }
  }
  if (state.done) { current = null; $("rate").hidden = true; $("done").hidden = false; return; }
  form.reset();
  current = state.item;
  $("image").src = base + "/image/" + state.item;
  $("rate").hidden = false;
}

async function load() {
  const res = await fetch(base + "/state", {cache: "no-store"});
  if (!res.ok) { say("This link is not valid (error " + res.status + ")."); return; }
  show(await res.json());
}

async function submit() {
  if (busy || current === null) { return; }
  if (!form.realism.value || !form.source_call.value) {
    say("Choose a realism score (1-5) and real or synthetic first."); return;
  }
  busy = true; $("next").disabled = true; say("Saving...");
  const body = {item: current, realism: Number(form.realism.value), source_call: form.source_call.value,
                class_call: $("class").value || null, comment: $("comment").value};
  try {
    const res = await fetch(base + "/answer", {method: "POST", headers: {"Content-Type": "application/json"},
                                               body: JSON.stringify(body)});
    if (res.ok) { show(await res.json()); say("Saved."); }
    else if (res.status === 409) { await load(); say("That image was already answered; here is your next one."); }
    else if (res.status === 429) { say("Too many requests: wait a second, then press Enter again."); }
    else { say("Not saved (error " + res.status + "): press Enter to try again."); }
  } catch (err) {
    say("Not saved (no connection): press Enter to try again.");
  } finally { busy = false; $("next").disabled = false; }
}

form.addEventListener("submit", (ev) => { ev.preventDefault(); submit(); });
document.addEventListener("keydown", (ev) => {
  const tag = ev.target && ev.target.tagName;
  if (tag === "TEXTAREA" || tag === "SELECT") {
    if (ev.key === "Escape") { ev.target.blur(); }
    else if (ev.key === "Enter" && (tag === "SELECT" || ev.ctrlKey)) { ev.preventDefault(); ev.target.blur(); submit(); }
    return;
  }
  if (ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
  const key = ev.key.toLowerCase();
  if (["1", "2", "3", "4", "5"].includes(key)) { form.realism.value = key; }
  else if (key === "r") { form.source_call.value = "real"; }
  else if (key === "s") { form.source_call.value = "synthetic"; }
  else if (key === "c") { $("class").focus(); }
  else if (key === "m") { $("comment").focus(); }
  else if (key === "enter") { submit(); }
  else { return; }
  ev.preventDefault();
});
load();
"""


def admin_html(summary: dict[str, Any], token: str) -> str:
    """The admin page: study facts, progress, the statistics tables and the export links."""
    info = summary["study"]
    esc = html.escape
    tables = "\n".join(table_html(Table(rows, caption)) for caption, rows in summary_tables(summary))
    classes = ", ".join(info["classes"]) or "none"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">
<title>Admin: {esc(info['name'])}</title><link rel="stylesheet" href="/static/style.css"></head><body><main>
<h1>Reader study &ldquo;{esc(info['name'])}&rdquo; &mdash; results</h1>
<p>{info['n_items']} images ({info['n_real']} real, {info['n_synthetic']} synthetic); classes offered: {esc(classes)};
study seed {info['seed']}; created {esc(info['created_at'])}.</p>
{tables}
<p>Export: <a href="/a/{esc(token)}/answers.csv">answers.csv</a> (one row per answer, with the ground truth) &middot;
<a href="/a/{esc(token)}/results.json">results.json</a> (this summary; <code>sonogan study export</code> writes the
same file for the experiment report).</p>
</main></body></html>
"""
