/* The kiosk HMI: one websocket (/ws/hmi/), one card per connector.
 *
 * The server sends a snapshot on connect, then changes (payload types in
 * webapp/station/hmi_messages.py). When the socket drops the page keeps what it shows,
 * marks it stale, and reconnects with backoff; the next snapshot replaces everything.
 * Texts come from i18n.js by key; values are set with textContent only. */
"use strict";

(function () {
  const RECONNECT_FIRST_MS = 1000;
  const RECONNECT_MAX_MS = 30000;
  const NOTICE_MS = 5000;
  const LANG_KEY = "hmi.lang";
  const SESSION_STATUSES = new Set(["Charging", "SuspendedEV", "SuspendedEVSE"]);
  const STARTABLE_STATUSES = new Set(["Available", "Preparing"]);
  const STANDARD_NAMES = { GBT: "GB/T", Type2: "Type 2" }; // as printed on cars; others as sent
  const AC_STANDARDS = new Set(["Type2"]);

  const page = {
    lang: chooseLanguage(),
    connectors: new Map(), // id -> last ConnectorView shown
    cards: new Map(), // id -> card element
    station: null,
    clockOffsetMs: 0, // station clock minus browser clock
    connected: false,
    pending: new Set(), // connector ids with an action waiting for its answer
  };
  let socket = null;
  let reconnectDelayMs = RECONNECT_FIRST_MS;
  let noticeTimer = null;

  function chooseLanguage() {
    const asked = new URLSearchParams(window.location.search).get("lang");
    if (asked && HMI_LANGUAGES.includes(asked)) return asked;
    const saved = window.localStorage.getItem(LANG_KEY);
    return saved && HMI_LANGUAGES.includes(saved) ? saved : "en";
  }

  function t(key) {
    return hmiText(page.lang, key);
  }

  /* ---- websocket ---------------------------------------------------------------------- */

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${window.location.host}/ws/hmi/`);
    socket.addEventListener("message", (event) => onMessage(event.data));
    socket.addEventListener("close", onClose);
  }

  function onClose() {
    socket = null;
    page.pending.clear();
    setConnected(false);
    window.setTimeout(connect, reconnectDelayMs);
    reconnectDelayMs = Math.min(reconnectDelayMs * 2, RECONNECT_MAX_MS);
  }

  function send(action, connectorId) {
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    socket.send(JSON.stringify({ action: action, connector_id: connectorId }));
    page.pending.add(connectorId);
    renderConnector(page.connectors.get(connectorId));
  }

  const HANDLERS = {
    snapshot: onSnapshot,
    connector: (payload) => showConnector(payload.connector),
    station: (payload) => showStation(payload.station),
    auth: (payload) => notify(`auth.${payload.status}`, payload.status === "Accepted"),
    action_result: onActionResult,
    error: onError,
  };

  function onMessage(text) {
    let payload;
    try {
      payload = JSON.parse(text);
    } catch (error) {
      console.error("HMI: unreadable message from the station", error);
      return;
    }
    const handler = HANDLERS[payload.type];
    if (handler) handler(payload);
    else console.error("HMI: unknown message type", payload.type);
  }

  function onSnapshot(payload) {
    reconnectDelayMs = RECONNECT_FIRST_MS;
    page.clockOffsetMs = Date.parse(payload.server_time) - Date.now();
    buildCards(payload.connectors.map((view) => view.id));
    page.connectors.clear();
    payload.connectors.forEach((view) => showConnector(view));
    showStation(payload.station);
    setConnected(true);
  }

  function onActionResult(payload) {
    page.pending.delete(payload.connector_id);
    renderConnector(page.connectors.get(payload.connector_id));
    if (payload.reason) notify(`reason.${payload.reason}`, payload.accepted);
  }

  function onError(payload) {
    if (payload.connector_id !== null && payload.connector_id !== undefined) {
      page.pending.delete(payload.connector_id);
      renderConnector(page.connectors.get(payload.connector_id));
    }
    notify(`error.${payload.code}`, false);
  }

  /* ---- station-wide ------------------------------------------------------------------- */

  function setConnected(connected) {
    page.connected = connected;
    document.body.classList.toggle("stale", !connected);
    document.getElementById("banner-connection").hidden = connected;
    page.connectors.forEach((view) => renderConnector(view));
  }

  function showStation(station) {
    page.station = station;
    document.getElementById("banner-estop").hidden = station.estop !== true;
    const pill = document.getElementById("ocpp");
    const state = station.ocpp === null ? "unknown" : station.ocpp.connected ? "online" : "offline";
    pill.dataset.state = state;
    pill.textContent = t(`ocpp.${state}`);
  }

  function notify(key, good) {
    const notice = document.getElementById("notice");
    notice.textContent = t(key);
    notice.dataset.kind = good ? "good" : "bad";
    notice.hidden = false;
    window.clearTimeout(noticeTimer);
    noticeTimer = window.setTimeout(() => { notice.hidden = true; }, NOTICE_MS);
  }

  /* ---- connectors --------------------------------------------------------------------- */

  function buildCards(ids) {
    const same = ids.length === page.cards.size && ids.every((id) => page.cards.has(id));
    if (same) return;
    const main = document.getElementById("connectors");
    main.replaceChildren();
    page.cards.clear();
    main.dataset.count = String(ids.length);
    const template = document.getElementById("connector-template");
    ids.forEach((id) => {
      const card = template.content.firstElementChild.cloneNode(true);
      card.dataset.connector = String(id);
      card.querySelectorAll("[data-action]").forEach((button) => {
        button.addEventListener("click", () => send(button.dataset.action, id));
      });
      applyTexts(card);
      main.appendChild(card);
      page.cards.set(id, card);
    });
  }

  function showConnector(view) {
    const shown = page.connectors.get(view.id);
    if (shown && shown.at && view.at && Date.parse(view.at) < Date.parse(shown.at)) return;
    if (!page.cards.has(view.id)) return;
    page.connectors.set(view.id, view);
    renderConnector(view);
  }

  function renderConnector(view) {
    if (!view) return;
    const card = page.cards.get(view.id);
    if (!card) return;
    const inSession = Boolean(view.session_id) || SESSION_STATUSES.has(view.status);
    card.dataset.status = view.status;
    card.querySelector(".connector-number").textContent = `${t("connector")} ${view.id}`;
    card.dataset.current = AC_STANDARDS.has(view.standard) ? "ac" : "dc";
    card.querySelector(".connector-standard").textContent = STANDARD_NAMES[view.standard] || view.standard;
    card.querySelector(".connector-status").textContent = t(`status.${view.status}`);
    card.querySelector(".connector-prompt").hidden = !view.awaiting_card;
    card.querySelector(".connector-info").textContent = infoText(view);
    field(card, "power").textContent = formatNumber(view.power_w / 1000, 1);
    field(card, "energy").textContent = formatNumber(view.session_energy_wh / 1000, 2);
    field(card, "soc").textContent = view.soc === null ? "-" : formatNumber(view.soc, 0);
    field(card, "elapsed").textContent = elapsedText(view);
    renderProgress(card, view);
    const idle = !page.connected || page.pending.has(view.id);
    const canStart = !inSession && !view.awaiting_card && STARTABLE_STATUSES.has(view.status);
    card.querySelector(".button-start").disabled = idle || !canStart;
    card.querySelector(".button-stop").disabled = idle || !(inSession || view.awaiting_card);
  }

  function infoText(view) {
    if (view.info && view.info !== "charging") return t(`info.${view.info}`);
    if (view.error_code && view.error_code !== "NoError") return view.error_code;
    return "";
  }

  function renderProgress(card, view) {
    const hasSoc = view.soc !== null;
    card.classList.toggle("no-soc", !hasSoc);
    const bar = card.querySelector(".progress");
    const target = card.querySelector(".progress-target");
    const label = card.querySelector(".progress-label");
    card.querySelector(".progress-fill").style.width = `${hasSoc ? view.soc : 0}%`;
    bar.setAttribute("aria-valuenow", hasSoc ? String(Math.round(view.soc)) : "0");
    target.hidden = view.target_soc === null;
    if (view.target_soc !== null) target.style.left = `${view.target_soc}%`;
    if (!hasSoc) label.textContent = "";
    else if (view.target_soc === null) label.textContent = `${formatNumber(view.soc, 0)} %`;
    else label.textContent = `${formatNumber(view.soc, 0)} % \u2192 ${formatNumber(view.target_soc, 0)} %`;
  }

  function field(card, name) {
    return card.querySelector(`[data-field="${name}"]`);
  }

  function formatNumber(value, digits) {
    return Number(value).toLocaleString(page.lang, {
      minimumFractionDigits: digits, maximumFractionDigits: digits,
    });
  }

  function elapsedText(view) {
    if (!view.session_started_at) return "-";
    const seconds = Math.max(0, Math.floor(
      (Date.now() + page.clockOffsetMs - Date.parse(view.session_started_at)) / 1000));
    const pad = (n) => String(n).padStart(2, "0");
    return `${Math.floor(seconds / 3600)}:${pad(Math.floor(seconds / 60) % 60)}:${pad(seconds % 60)}`;
  }

  /* ---- texts, clock, start-up --------------------------------------------------------- */

  function applyTexts(root) {
    root.querySelectorAll("[data-text]").forEach((node) => {
      node.textContent = t(node.dataset.text);
    });
  }

  function setLanguage(lang) {
    page.lang = lang;
    window.localStorage.setItem(LANG_KEY, lang);
    document.documentElement.lang = lang;
    document.getElementById("lang").textContent = t("lang_switch");
    applyTexts(document);
    page.cards.forEach((card) => applyTexts(card));
    page.connectors.forEach((view) => renderConnector(view));
    if (page.station) showStation(page.station);
  }

  function tick() {
    const now = new Date(Date.now() + page.clockOffsetMs);
    document.getElementById("clock").textContent = now.toLocaleTimeString(page.lang, {
      hour: "2-digit", minute: "2-digit", hour12: false,
    });
    page.connectors.forEach((view) => {
      const card = page.cards.get(view.id);
      if (card) field(card, "elapsed").textContent = elapsedText(view);
    });
  }

  function start() {
    document.getElementById("lang").addEventListener("click", () => {
      const next = HMI_LANGUAGES[(HMI_LANGUAGES.indexOf(page.lang) + 1) % HMI_LANGUAGES.length];
      setLanguage(next);
    });
    setLanguage(page.lang);
    showStation({ estop: null, ocpp: null });
    tick();
    window.setInterval(tick, 1000);
    connect();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
