// The stall page: the vendor's QR, today's payments, each new one shown and spoken as it
// lands, and "ask for an amount". No framework and no build step: this file is what runs.
//
// Payments come over server-sent events: first a `snapshot` of today's, then each `payment`
// with the stream's cursor as its id. The browser reconnects by itself with the last id
// (Last-Event-ID); when it gives up (the server refused, the phone slept) the page reconnects
// with ?after=<last cursor>, so nothing is lost. A payment is kept once by its id, and spoken
// once: the ids spoken are remembered in localStorage across reloads.
"use strict";

const TEXT = {
  vi: {
    connecting: "Đang kết nối…", live: "Trực tiếp", reconnecting: "Đang kết nối lại…",
    offline: "Mất mạng — đang thử lại", sound_on: "🔊 Loa bật", sound_off: "🔇 Bật loa",
    account: "Số tài khoản", today: "Hôm nay", payments: "khoản thanh toán",
    ask_title: "Yêu cầu số tiền", ask_button: "Tạo mã QR", exp_1: "1 phút", exp_5: "5 phút",
    exp_15: "15 phút", received: "Đã nhận", sign_out: "Đăng xuất",
    signed_out_title: "Chưa đăng nhập",
    signed_out_text: "Hãy mở liên kết đăng nhập mà paymesh gửi cho bạn.",
    stall: "Quầy", market: "Chợ",
    ACTIVE: "Đang chờ thanh toán", PAID: "✓ ĐÃ THANH TOÁN", EXPIRED: "HẾT HẠN",
    CANCELLED: "ĐÃ HỦY", partly: "Đã nhận", expires: "hết hạn lúc",
    bad_amount: "Số tiền phải là số nguyên đồng, từ 1 đến 999.999.999.999.",
    ask_failed: "Không tạo được mã QR",
  },
  en: {
    connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…",
    offline: "Offline — retrying", sound_on: "🔊 Sound on", sound_off: "🔇 Turn sound on",
    account: "Account number", today: "Today", payments: "payments",
    ask_title: "Ask for an amount", ask_button: "Make QR", exp_1: "1 minute", exp_5: "5 minutes",
    exp_15: "15 minutes", received: "Received", sign_out: "Sign out",
    signed_out_title: "Not signed in",
    signed_out_text: "Open the sign-in link paymesh sent you.",
    stall: "Stall", market: "Market",
    ACTIVE: "Waiting for payment", PAID: "✓ PAID", EXPIRED: "EXPIRED", CANCELLED: "CANCELLED",
    partly: "Received", expires: "expires at",
    bad_amount: "The amount must be whole đồng, 1 to 999,999,999,999.",
    ask_failed: "Could not make the QR",
  },
};

const SPOKEN_KEY = "paymesh.spoken";
const SPOKEN_KEEP = 500;

const state = {
  lang: localStorage.getItem("paymesh.lang") === "en" ? "en" : "vi",
  sound: false,            // speech needs one tap on the page (browsers' rule), then stays on
  muted: localStorage.getItem("paymesh.muted") === "1",
  stall: null,
  cursor: "",
  source: null,
  retry: null,
  payments: new Map(),     // payment id -> payment, today's
  spoken: new Set(JSON.parse(localStorage.getItem(SPOKEN_KEY) || "[]")),
  intent: null,            // the amount asked for last
  intentTimer: null,
};

// What the tests and a curious vendor can read: every text spoken, in order.
window.paymeshSpoken = [];

const $ = (id) => document.getElementById(id);
const t = (key) => TEXT[state.lang][key] || key;

function applyLanguage() {
  document.documentElement.lang = state.lang;
  for (const el of document.querySelectorAll("[data-i18n]")) {
    el.textContent = t(el.dataset.i18n);
  }
  $("lang").textContent = state.lang === "vi" ? "English" : "Tiếng Việt";
  $("lang").lang = state.lang === "vi" ? "en" : "vi";
  setStatus($("status").dataset.state);
  showSound();
  if (state.stall) showStall();
  if (state.intent) showIntent();
}

function setStatus(s) {
  const el = $("status");
  el.dataset.state = s;
  el.textContent = t(s);
}

function showSound() {
  const on = state.sound && !state.muted;
  $("sound").setAttribute("aria-pressed", on ? "true" : "false");
  $("sound").textContent = on ? t("sound_on") : t("sound_off");
}

function grouped(amount) {
  return String(amount).replace(/\B(?=(\d{3})+(?!\d))/g, state.lang === "vi" ? "." : ",") + " đ";
}

// "2026-12-01T15:04:05+07:00" -> "15:04" (the time as the vendor reads it, in Vietnam).
const hhmm = (local) => (local || "").slice(11, 16);

function showStall() {
  const s = state.stall;
  $("name").textContent = s.name;
  const where = [];
  // "Chợ Đông Ba" names itself a market already.
  if (s.market) where.push(/^chợ\s/i.test(s.market) ? s.market : `${t("market")} ${s.market}`);
  if (s.stall) where.push(`${t("stall")} ${s.stall}`);
  $("where").textContent = where.join(" · ");
  $("account").textContent = s.account;
  $("csrf").value = s.csrf;
  showTotals();
}

function showTotals() {
  let total = 0;
  for (const p of state.payments.values()) total += Number(p.amount);
  $("today-total").textContent = grouped(total);
  $("today-count").textContent = String(state.payments.size);
}

function paymentItem(p, fresh) {
  const li = document.createElement("li");
  li.dataset.paymentId = p.payment_id;
  if (fresh) li.className = "new";
  const time = document.createElement("span");
  time.className = "time";
  time.textContent = hhmm(p.time_local);
  const amount = document.createElement("span");
  amount.className = "amount";
  amount.textContent = grouped(p.amount);
  const words = document.createElement("span");
  words.className = "words";
  words.textContent = p.words + " đồng";
  const desc = document.createElement("span");
  desc.className = "desc";
  desc.textContent = p.description;
  li.append(time, amount, words, desc);
  return li;
}

// Keeps a payment once; answers whether it was new.
function addPayment(p, fresh) {
  if (!state.stall || p.time_local.slice(0, 10) !== state.stall.today) return false;
  if (state.payments.has(p.payment_id)) return false;
  state.payments.set(p.payment_id, p);
  const list = $("payments");
  const item = paymentItem(p, fresh);
  // Newest first, by time.
  const after = [...list.children].find((li) => state.payments.get(li.dataset.paymentId).time < p.time);
  list.insertBefore(item, after || null);
  showTotals();
  return true;
}

function speak(p) {
  if (state.spoken.has(p.payment_id)) return;
  state.spoken.add(p.payment_id);
  const keep = [...state.spoken].slice(-SPOKEN_KEEP);
  localStorage.setItem(SPOKEN_KEY, JSON.stringify(keep));
  $("last-spoken").textContent = p.spoken;
  if (!state.sound || state.muted) return;
  window.paymeshSpoken.push(p.spoken);
  if (!("speechSynthesis" in window)) return;
  const u = new SpeechSynthesisUtterance(p.spoken);
  u.lang = "vi-VN";
  const voice = speechSynthesis.getVoices().find((v) => v.lang && v.lang.toLowerCase().startsWith("vi"));
  if (voice) u.voice = voice;
  u.rate = 0.95;
  speechSynthesis.speak(u);
}

function onPayment(p) {
  state.cursor = p.cursor || state.cursor;
  addPayment(p, true);
  speak(p);
  if (state.intent && p.intent_id === state.intent.intent_id) {
    state.intent = p.intent || Object.assign({}, state.intent, { status: "PAID" });
    showIntent();
  }
}

function connect() {
  clearTimeout(state.retry);
  if (state.source) state.source.close();
  const url = state.cursor ? `/api/events?after=${encodeURIComponent(state.cursor)}` : "/api/events";
  const es = new EventSource(url);
  state.source = es;
  es.onopen = () => setStatus("live");
  es.addEventListener("snapshot", (e) => {
    const data = JSON.parse(e.data);
    for (const p of data.payments) addPayment(p, false);
  });
  es.addEventListener("payment", (e) => {
    const p = JSON.parse(e.data);
    p.cursor = e.lastEventId;
    onPayment(p);
  });
  es.addEventListener("intent", (e) => {
    state.cursor = e.lastEventId || state.cursor;
    const i = JSON.parse(e.data);
    if (state.intent && i.intent_id === state.intent.intent_id) {
      state.intent = i;
      showIntent();
    }
  });
  es.addEventListener("skip", (e) => { state.cursor = e.lastEventId || state.cursor; });
  es.addEventListener("signed_out", () => { es.close(); signedOut(); });
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED) {
      // The browser gave up (an error answer): check the session, then start again.
      setStatus(navigator.onLine ? "reconnecting" : "offline");
      state.retry = setTimeout(resume, 2000);
    } else {
      setStatus(navigator.onLine ? "reconnecting" : "offline");
    }
  };
}

// After an error or a sleep: still signed in? then the stream again from the last cursor.
async function resume() {
  try {
    const r = await fetch("/api/stall", { credentials: "same-origin", cache: "no-store" });
    if (r.status === 401) return signedOut();
    if (!r.ok) throw new Error(String(r.status));
    state.stall = await r.json();
    showStall();
    connect();
    if (state.intent && state.intent.status === "ACTIVE") checkIntent();
  } catch (_) {
    setStatus(navigator.onLine ? "reconnecting" : "offline");
    state.retry = setTimeout(resume, 3000);
  }
}

function signedOut() {
  if (state.source) state.source.close();
  $("stall-view").hidden = true;
  $("signed-out").hidden = false;
  setStatus("offline");
}

function showIntent() {
  const i = state.intent;
  $("ask-result").hidden = false;
  $("ask-qr").src = i.qr;
  $("ask-amount-text").textContent = grouped(i.amount);
  $("ask-words").textContent = i.words + " đồng";
  const status = $("ask-status");
  status.dataset.status = i.status;
  let text = t(i.status);
  if (i.status === "ACTIVE" && Number(i.amount_received) > 0) {
    text += ` — ${t("partly")} ${grouped(i.amount_received)}`;
  }
  if (i.status === "ACTIVE") {
    const at = new Date(i.expire_time);
    text += ` (${t("expires")} ${at.toLocaleTimeString("vi-VN", { timeZone: "Asia/Ho_Chi_Minh", hour: "2-digit", minute: "2-digit" })})`;
  }
  status.textContent = text;
  // The QR is taken away once it cannot be paid any more.
  $("ask-qr").hidden = i.status !== "ACTIVE";
  clearTimeout(state.intentTimer);
  if (i.status === "ACTIVE") {
    const wait = Math.max(0, new Date(i.expire_time).getTime() - Date.now()) + 500;
    state.intentTimer = setTimeout(checkIntent, Math.min(wait, 60000));
  }
}

async function checkIntent() {
  if (!state.intent) return;
  try {
    const r = await fetch(`/api/intents/${state.intent.intent_id}`, { credentials: "same-origin", cache: "no-store" });
    if (r.status === 401) return signedOut();
    if (r.ok) {
      state.intent = await r.json();
    }
  } catch (_) { /* offline: try again below */ }
  showIntent();
  if (state.intent.status === "ACTIVE") {
    clearTimeout(state.intentTimer);
    state.intentTimer = setTimeout(checkIntent, 2000);
  }
}

function randomKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function ask(e) {
  e.preventDefault();
  const amount = $("ask-amount").value.trim().replace(/[.,\s]/g, "");
  const error = $("ask-error");
  error.hidden = true;
  if (!/^[1-9][0-9]{0,11}$/.test(amount)) {
    error.textContent = t("bad_amount");
    error.hidden = false;
    return;
  }
  $("ask-button").disabled = true;
  try {
    const r = await fetch("/api/intents", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": state.stall.csrf },
      body: JSON.stringify({ amount, expires_in_seconds: Number($("ask-expiry").value), key: randomKey() }),
    });
    const body = await r.json();
    if (r.status === 401) return signedOut();
    if (!r.ok) throw new Error(body.message || String(r.status));
    state.intent = body;
    showIntent();
    // The QR to show the buyer, on screen.
    $("ask-result").scrollIntoView({ block: "start" });
  } catch (err) {
    error.textContent = `${t("ask_failed")}: ${err.message}`;
    error.hidden = false;
  } finally {
    $("ask-button").disabled = false;
  }
}

function toggleSound() {
  if (!state.sound) {
    state.sound = true;   // this tap is the user gesture speech needs
    state.muted = false;
    if ("speechSynthesis" in window) speechSynthesis.speak(new SpeechSynthesisUtterance(""));
  } else {
    state.muted = !state.muted;
  }
  localStorage.setItem("paymesh.muted", state.muted ? "1" : "0");
  showSound();
}

async function start() {
  $("lang").addEventListener("click", () => {
    state.lang = state.lang === "vi" ? "en" : "vi";
    localStorage.setItem("paymesh.lang", state.lang);
    applyLanguage();
  });
  $("sound").addEventListener("click", toggleSound);
  $("ask-form").addEventListener("submit", ask);
  window.addEventListener("online", () => { if (!state.source || state.source.readyState === EventSource.CLOSED) resume(); });
  window.addEventListener("offline", () => setStatus("offline"));
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && (!state.source || state.source.readyState === EventSource.CLOSED)) resume();
  });
  applyLanguage();
  const r = await fetch("/api/stall", { credentials: "same-origin", cache: "no-store" });
  if (!r.ok) return signedOut();
  state.stall = await r.json();
  $("qr").src = "/api/qr.svg";
  $("stall-view").hidden = false;
  showStall();
  connect();
}

start();
