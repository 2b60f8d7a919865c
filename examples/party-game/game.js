// A buzzer quiz on the party-sockets browser client. The host screen shows
// the code and a scoreboard; phones join by code and buzz. The host keeps
// the game in the room's retained state, so a player who reconnects (or
// reloads) sees the current round at once.
import { PartySocket } from "party-sockets-client"; // index.html maps the name to the served file

const params = new URLSearchParams(location.search);
const relay = params.get("relay") || location.origin;
const $ = (id) => document.getElementById(id);
window.party = null; // the live client, for tests and the console

// Why a client stopped, in words a player understands: the host ending the
// game (4001) is not the same as losing the connection.
function endReason(detail) {
  if (detail.code === 4001) return "The host ended the game.";
  if (detail.code === 4000) return "You joined from another tab or device.";
  if (detail.reason === "room not found") return "This room no longer exists.";
  return "The connection to the room was lost.";
}

// newGame forgets the saved room and starts over.
function newGame() {
  for (const k of Object.keys(localStorage)) if (k.startsWith("party-sockets:") || k === "quiz-name") localStorage.removeItem(k);
  location.reload();
}

function showError(el, text) {
  el.textContent = text;
  el.className = "status error";
}

function showStatus(el, s) {
  const text = { open: "connected", reconnecting: "reconnecting…", closed: "room closed", connecting: "connecting…" };
  el.textContent = text[s] || s;
  el.className = "status " + s;
}

// ---- host ---------------------------------------------------------------
async function host() {
  $("host").classList.remove("hidden");
  const game = { round: 1, names: {}, scores: {}, buzzed: [], left: [] };
  const h = (await PartySocket.resume(relay, { persist: true })) ||
    (await PartySocket.create(relay, { maxClients: 9, persist: true }));
  window.party = h;
  if (h.state) Object.assign(game, h.state);
  $("host-code").textContent = h.room;
  showStatus($("host-status"), h.status);
  const publish = () => {
    h.setState(game);
    render();
  };
  const render = () => {
    $("round").textContent = game.round;
    $("first").textContent = game.buzzed.length ? game.names[game.buzzed[0]] || "player " + game.buzzed[0] : "—";
    $("scores").replaceChildren(
      ...Object.keys(game.names).map((slot) => {
        const tr = document.createElement("tr");
        const order = game.buzzed.indexOf(Number(slot));
        tr.innerHTML = "<td></td><td></td><td></td>";
        tr.children[0].textContent = game.names[slot];
        tr.children[1].textContent = game.scores[slot] || 0;
        tr.children[2].textContent = order < 0 ? "" : "#" + (order + 1);
        if (order === 0) tr.className = "first";
        if (game.left.includes(Number(slot))) tr.classList.add("left");
        return tr;
      }),
    );
  };
  // Players who leave are marked until they come back.
  h.addEventListener("peer_left", ({ detail: { index } }) => {
    if (!game.left.includes(index)) game.left.push(index);
    publish();
  });
  h.addEventListener("peer_joined", ({ detail: { index } }) => {
    game.left = game.left.filter((i) => i !== index);
    publish();
  });
  h.addEventListener("message", ({ detail: { from, data } }) => {
    if (data && data.t === "hello") {
      game.names[from] = String(data.name || "player " + from).slice(0, 20);
      publish();
    } else if (data && data.t === "buzz" && !game.buzzed.includes(from)) {
      if (game.buzzed.length === 0) game.scores[from] = (game.scores[from] || 0) + 1;
      game.buzzed.push(from);
      publish();
    }
  });
  for (const ev of ["reconnecting", "joined"]) h.addEventListener(ev, () => showStatus($("host-status"), h.status));
  const ended = () => {
    for (const id of ["next", "end"]) $(id).classList.add("hidden");
    $("host-new").classList.remove("hidden");
  };
  h.addEventListener("closed", (e) => {
    if (e.detail.code === 4001) showStatus($("host-status"), "closed");
    else showError($("host-status"), endReason(e.detail));
    ended();
  });
  $("host-new").onclick = newGame;
  $("next").onclick = () => {
    game.round++;
    game.buzzed = [];
    publish();
  };
  $("end").onclick = () => {
    if (!confirm("End the game for everyone?")) return;
    h.closeRoom();
    showStatus($("host-status"), "closed");
    ended();
  };
  publish();
}

// ---- player ---------------------------------------------------------------
async function player() {
  $("player").classList.remove("hidden");
  const status = $("player-status");
  const play = (p, name) => {
    window.party = p;
    $("join-form").classList.add("hidden");
    $("game").classList.remove("hidden");
    $("me").textContent = name;
    $("room").textContent = p.room;
    showStatus(status, p.status);
    let shown = null;
    const apply = (state) => {
      if (!state) return;
      // Every round the host starts is logged: a player who was away
      // sees each one it missed, not only the last (message recovery).
      if (state.round !== shown) {
        shown = state.round;
        const li = document.createElement("li");
        li.textContent = "Round " + state.round;
        $("log").append(li);
      }
      $("p-round").textContent = state.round;
      const mine = state.buzzed.indexOf(p.index);
      $("buzz").disabled = mine >= 0;
      $("result").textContent = mine < 0 ? "" : mine === 0 ? "You were first!" : "You were #" + (mine + 1);
    };
    apply(p.state);
    p.addEventListener("state", (e) => apply(e.detail.data));
    p.addEventListener("joined", () => {
      showStatus(status, p.status);
      p.send({ t: "hello", name });
    });
    p.addEventListener("reconnecting", () => showStatus(status, "reconnecting"));
    p.addEventListener("closed", (e) => {
      if (e.detail.code === 4001) showStatus(status, "closed");
      else showError(status, "disconnected");
      $("buzz").disabled = true;
      $("result").textContent = endReason(e.detail);
      $("player-new").classList.remove("hidden");
    });
    $("player-new").onclick = newGame;
    $("buzz").onclick = () => p.send({ t: "buzz" });
    p.send({ t: "hello", name });
  };
  const saved = PartySocket.saved(relay);
  if (saved && saved.room && localStorage.getItem("quiz-name")) {
    try {
      return play(await PartySocket.resume(relay), localStorage.getItem("quiz-name"));
    } catch {}
  }
  $("join-form").onsubmit = async (e) => {
    e.preventDefault();
    const name = $("name").value.trim() || "player";
    status.textContent = "joining…";
    try {
      const p = await PartySocket.join(relay, $("code").value.trim(), { persist: true });
      localStorage.setItem("quiz-name", name);
      play(p, name);
    } catch (err) {
      showError(status, err.message === "Room not found" ? "No room with that code. Codes are case-sensitive." : err.message);
    }
  };
}

(params.get("role") === "host" ? host : player)().catch((err) => {
  document.body.append(Object.assign(document.createElement("p"), { className: "status closed", textContent: String(err) }));
});
