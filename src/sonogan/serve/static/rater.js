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
