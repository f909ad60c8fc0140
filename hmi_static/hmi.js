/* The kiosk HMI: one websocket (/ws/hmi/), one card per connector.
 *
 * On connect the server sends the kiosk settings (default language, QR codes) and a snapshot,
 * then changes (payload types in webapp/station/hmi_messages.py). When the socket drops the page
 * keeps what it shows, marks it stale, and reconnects with backoff; the next snapshot replaces
 * everything. Texts come from i18n.js by key; values are set with textContent only, and the QR
 * codes (SVG data: URIs drawn by the server) go into <img> elements, never into the markup.
 *
 * Language: the operator's default (HmiSettings.language) unless a driver switched. A driver's
 * choice is temporary: it lasts until nobody touched the screen for IDLE_MS, or until the
 * summary of a session that ended is closed. */
"use strict";

(function () {
  const RECONNECT_FIRST_MS = 1000;
  const RECONNECT_MAX_MS = 30000;
  const NOTICE_MS = 5000;
  const IDLE_MS = 60000; // no touch for this long: default language back, QR panel closed
  const SUMMARY_MS = 60000; // a session's summary stays this long unless touched
  const STOP_PROMPT_MS = 30000; // how long a refused Stop keeps asking for the session's card
  const STOP_NEEDS_CARD = "present_start_card"; // hmi_messages.STOP_NEEDS_CARD
  const SESSION_STATUSES = new Set(["Charging", "SuspendedEV", "SuspendedEVSE"]);
  const STARTABLE_STATUSES = new Set(["Available", "Preparing"]);
  const STANDARD_NAMES = { GBT: "GB/T", Type2: "Type 2" }; // as printed on cars; others as sent
  const AC_STANDARDS = new Set(["Type2"]);

  const page = {
    lang: "en",
    defaultLang: "en", // the operator's, from the kiosk settings
    langChosen: false, // a driver switched the language
    kiosk: { language: "en", qr_codes: [], connector_codes: [] },
    connectors: new Map(), // id -> last ConnectorView shown
    cards: new Map(), // id -> card element
    station: null,
    clockOffsetMs: 0, // station clock minus browser clock
    connected: false,
    pending: new Set(), // connector ids with an action waiting for its answer
    summaries: new Map(), // connector id -> { payload, timer } of a session that ended
    stopPrompts: new Map(), // connector id -> timer of "present the card that started it"
  };
  let socket = null;
  let reconnectDelayMs = RECONNECT_FIRST_MS;
  let noticeTimer = null;
  let idleTimer = null;

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
    kiosk: onKiosk,
    snapshot: onSnapshot,
    connector: (payload) => showConnector(payload.connector),
    station: (payload) => showStation(payload.station),
    auth: (payload) => notify(`auth.${payload.status}`, payload.status === "Accepted"),
    session_summary: onSummary,
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

  function onKiosk(payload) {
    page.kiosk = payload.kiosk;
    page.defaultLang = payload.kiosk.language;
    if (page.langChosen) renderAll();
    else setLanguage(page.defaultLang);
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
    const id = payload.connector_id;
    page.pending.delete(id);
    if (payload.action === "stop" && payload.reason === STOP_NEEDS_CARD) askForStartCard(id);
    else if (payload.reason) notify(`reason.${payload.reason}`, payload.accepted);
    renderConnector(page.connectors.get(id));
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
    const pill = document.getElementById("ocpp");
    const state = station.ocpp === null ? "unknown" : station.ocpp.connected ? "online" : "offline";
    pill.dataset.state = state;
    pill.textContent = t(`ocpp.${state}`);
    document.getElementById("banner-offline").hidden = state !== "offline";
    renderStationScreen();
  }

  /* E-stop, a station fault, or the whole station out of service: one screen over the cards. */
  function renderStationScreen() {
    const station = page.station;
    const screen = document.getElementById("station-screen");
    let kind = null;
    if (station && station.estop === true) kind = "estop";
    else if (station && station.status === "Faulted") kind = "faulted";
    else if (station && station.status === "Unavailable") kind = "blocked";
    screen.hidden = kind === null;
    if (kind === null) return;
    screen.dataset.kind = kind;
    screen.querySelector(".screen-title").textContent = t(`screen.${kind}`);
    screen.querySelector(".screen-text").textContent = kind === "faulted" ? stationFaultText()
      : t(`screen.${kind}_text`);
  }

  /* A station fault reaches every connector with its info key; the first one says which. */
  function stationFaultText() {
    const faulted = [...page.connectors.values()].find((view) => view.status === "Faulted" && view.info);
    return faulted ? t(`info.${faulted.info}`) : t("screen.faulted_text");
  }

  function notify(key, good) {
    const notice = document.getElementById("notice");
    notice.textContent = t(key);
    notice.dataset.kind = good ? "good" : "bad";
    notice.hidden = false;
    window.clearTimeout(noticeTimer);
    noticeTimer = window.setTimeout(() => { notice.hidden = true; }, NOTICE_MS);
  }

  /* ---- QR codes ------------------------------------------------------------------------ */

  function renderQrPanel() {
    const codes = page.kiosk.qr_codes;
    document.getElementById("qr-open").hidden = codes.length === 0;
    if (codes.length === 0) document.getElementById("qr-panel").hidden = true;
    const template = document.getElementById("qr-template");
    document.querySelector("#qr-panel .qr-list").replaceChildren(...codes.map((code) => {
      const figure = template.content.firstElementChild.cloneNode(true);
      figure.dataset.qr = code.key;
      showQr(figure, code);
      figure.querySelector(".qr-caption").textContent = t(`qr.${code.key}`);
      return figure;
    }));
  }

  function showQr(figure, code) {
    const image = figure.querySelector(".qr-image");
    if (image.getAttribute("src") !== code.image) image.src = code.image;
  }

  function connectorCode(id) {
    const found = page.kiosk.connector_codes.find((entry) => entry.connector_id === id);
    return found ? found.code : null;
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
      card.querySelector(".connector-summary").addEventListener("click", () => closeSummary(id, true));
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
    if (view.session_id || view.awaiting_card) closeSummary(view.id, false); // a new driver
    if (!view.session_id) forgetStartCard(view.id);
    renderConnector(view);
    renderStationScreen();
  }

  function renderConnector(view) {
    if (!view) return;
    const card = page.cards.get(view.id);
    if (!card) return;
    const inSession = Boolean(view.session_id) || SESSION_STATUSES.has(view.status);
    card.dataset.status = view.status;
    card.dataset.view = cardView(view, inSession);
    card.querySelector(".connector-number").textContent = `${t("connector")} ${view.id}`;
    card.dataset.current = AC_STANDARDS.has(view.standard) ? "ac" : "dc";
    card.querySelector(".standard-icon use").setAttribute("href", `#std-${view.standard}`);
    card.querySelector(".standard-name").textContent = STANDARD_NAMES[view.standard] || view.standard;
    card.querySelector(".connector-status").textContent = t(`status.${view.status}`);
    renderPrompt(card, view);
    card.querySelector(".connector-info").textContent = infoText(view);
    field(card, "power").textContent = formatNumber(view.power_w / 1000, 1);
    field(card, "energy").textContent = formatNumber(view.session_energy_wh / 1000, 2);
    field(card, "soc").textContent = view.soc === null ? "-" : formatNumber(view.soc, 0);
    field(card, "elapsed").textContent = elapsedText(view);
    renderProgress(card, view);
    renderSummary(card, view.id);
    const code = connectorCode(view.id);
    if (code) showQr(card.querySelector(".connector-qr"), code);
    const idle = !page.connected || page.pending.has(view.id);
    const canStart = !inSession && !view.awaiting_card && STARTABLE_STATUSES.has(view.status);
    card.querySelector(".button-start").disabled = idle || !canStart;
    card.querySelector(".button-stop").disabled = idle || !(inSession || view.awaiting_card);
  }

  /* What the space under the head shows: a session's summary, the deep link's QR code while
   * the connector can be started, or the live values. */
  function cardView(view, inSession) {
    if (page.summaries.has(view.id)) return "summary";
    if (!inSession && STARTABLE_STATUSES.has(view.status) && connectorCode(view.id)) return "qr";
    return "metrics";
  }

  function renderPrompt(card, view) {
    const prompt = card.querySelector(".connector-prompt");
    let key = null;
    if (view.awaiting_card) key = "present_card";
    else if (page.stopPrompts.has(view.id)) key = "present_start_card";
    prompt.hidden = key === null;
    if (key !== null) prompt.textContent = t(key);
  }

  function infoText(view) {
    if (view.info && view.info !== "charging") return t(`info.${view.info}`);
    if (view.error_code && view.error_code !== "NoError") return t(`fault.${view.error_code}`);
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

  /* ---- end of a session, and the card a Stop needs ------------------------------------ */

  function onSummary(payload) {
    const id = payload.connector_id;
    if (!page.cards.has(id)) return;
    closeSummary(id, false);
    forgetStartCard(id);
    page.summaries.set(id, { payload: payload, timer: window.setTimeout(() => closeSummary(id, true), SUMMARY_MS) });
    renderConnector(page.connectors.get(id));
  }

  /* `endOfVisit`: the driver is done (touched it, or it timed out), so the language goes back
   * to the default; a new session on the connector only makes room. */
  function closeSummary(id, endOfVisit) {
    const shown = page.summaries.get(id);
    if (!shown) return;
    window.clearTimeout(shown.timer);
    page.summaries.delete(id);
    if (endOfVisit) resetLanguage();
    renderConnector(page.connectors.get(id));
  }

  function renderSummary(card, id) {
    const shown = page.summaries.get(id);
    if (!shown) return;
    field(card, "summary-energy").textContent = formatNumber(shown.payload.energy_wh / 1000, 2);
    const seconds = shown.payload.duration_s;
    field(card, "summary-duration").textContent = seconds === null ? "-" : durationText(seconds);
  }

  function askForStartCard(id) {
    forgetStartCard(id);
    page.stopPrompts.set(id, window.setTimeout(() => {
      page.stopPrompts.delete(id);
      renderConnector(page.connectors.get(id));
    }, STOP_PROMPT_MS));
  }

  function forgetStartCard(id) {
    window.clearTimeout(page.stopPrompts.get(id));
    page.stopPrompts.delete(id);
  }

  /* ---- formatting ----------------------------------------------------------------------- */

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
    return durationText((Date.now() + page.clockOffsetMs - Date.parse(view.session_started_at)) / 1000);
  }

  function durationText(totalSeconds) {
    const seconds = Math.max(0, Math.floor(totalSeconds));
    const pad = (n) => String(n).padStart(2, "0");
    return `${Math.floor(seconds / 3600)}:${pad(Math.floor(seconds / 60) % 60)}:${pad(seconds % 60)}`;
  }

  /* ---- texts, idle, clock, start-up ----------------------------------------------------- */

  function applyTexts(root) {
    root.querySelectorAll("[data-text]").forEach((node) => {
      node.textContent = t(node.dataset.text);
    });
  }

  function setLanguage(lang) {
    page.lang = lang;
    document.documentElement.lang = lang;
    document.getElementById("lang").textContent = t("lang_switch");
    applyTexts(document);
    renderAll();
  }

  function resetLanguage() {
    page.langChosen = false;
    if (page.lang !== page.defaultLang) setLanguage(page.defaultLang);
  }

  function renderAll() {
    renderQrPanel();
    page.connectors.forEach((view) => renderConnector(view));
    if (page.station) showStation(page.station);
  }

  function restartIdleTimer() {
    window.clearTimeout(idleTimer);
    idleTimer = window.setTimeout(() => {
      resetLanguage();
      document.getElementById("qr-panel").hidden = true;
    }, IDLE_MS);
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
      page.langChosen = true;
      setLanguage(HMI_LANGUAGES[(HMI_LANGUAGES.indexOf(page.lang) + 1) % HMI_LANGUAGES.length]);
    });
    document.getElementById("qr-open").addEventListener("click", () => {
      document.getElementById("qr-panel").hidden = false;
    });
    document.getElementById("qr-close").addEventListener("click", () => {
      document.getElementById("qr-panel").hidden = true;
    });
    document.addEventListener("pointerdown", restartIdleTimer, { capture: true });
    document.addEventListener("contextmenu", (event) => event.preventDefault()); // long press
    setLanguage(page.lang);
    showStation({ status: null, estop: null, ocpp: null });
    restartIdleTimer();
    tick();
    window.setInterval(tick, 1000);
    connect();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
