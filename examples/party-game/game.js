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
  if (detail.reason === "room ended") return "This game has ended.";
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

// A client's status as it changes: the client notices a dead link by its
// heartbeat, within about 10 s, even when the network ends nothing.
function onStatus(p, f) {
  for (const ev of ["reconnecting", "joined", "closed"]) p.addEventListener(ev, () => f(p.status));
  f(p.status);
}

// ---- host ---------------------------------------------------------------
async function host() {
  $("host").classList.remove("hidden");
  const game = { round: 1, names: {}, scores: {}, buzzed: [], left: [] };
  // The saved room, or a fresh one: resume is null once the saved room is
  // gone (closed, or the host grace ran out while the page was away).
  const h = (await PartySocket.resume(relay, { persist: true })) ||
    (await PartySocket.create(relay, { maxClients: 9, persist: true }));
  window.party = h;
  if (h.state) Object.assign(game, h.state);
  $("host-code").textContent = h.room;
  // A state not sent (setState is false while reconnecting), or sent into
  // a link that was already dead, would be lost: every rejoin sends the
  // game again (the "joined" listener below).
  const publish = () => {
    if (!h.setState(game)) $("host-status").textContent = "reconnecting… (the game is sent once back)";
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
  h.addEventListener("joined", () => publish());
  let over = false;
  onStatus(h, (s) => {
    for (const id of ["next", "end"]) $(id).disabled = s !== "open";
    if (!over) showStatus($("host-status"), s);
  });
  const ended = () => {
    over = true;
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
    if (!h.closeRoom()) {
      showError($("host-status"), "Not ended: the connection dropped. Try again once connected.");
      return;
    }
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
    let shown = null;
    let current = p.state;
    // A buzz is kept until the host's state shows it: one sent into a dead
    // link, or not sent at all, is sent again once back (the host counts
    // a player's first buzz of a round only, so twice is harmless).
    let buzzed = null; // the round this player buzzed in, until the state has it
    const mine = () => (current && Array.isArray(current.buzzed) ? current.buzzed.indexOf(p.index) : -1);
    const buzz = () => {
      if (!p.send({ t: "buzz" })) $("result").textContent = "Not connected: your buzz goes out once back.";
    };
    const buttons = () => {
      $("buzz").disabled = p.status !== "open" || mine() >= 0 || Boolean(current && buzzed === current.round);
    };
    const apply = (state) => {
      if (!state) return;
      current = state;
      // Every round the host starts is logged: a player who was away
      // sees each one it missed, not only the last (message recovery).
      if (state.round !== shown) {
        shown = state.round;
        const li = document.createElement("li");
        li.textContent = "Round " + state.round;
        $("log").append(li);
      }
      $("p-round").textContent = state.round;
      const at = mine();
      if (at >= 0 || buzzed !== state.round) buzzed = null; // the host has it, or a new round began
      $("result").textContent = at < 0 ? (buzzed === null ? "" : "Buzzed: waiting for the host…")
        : at === 0 ? "You were first!" : "You were #" + (at + 1);
      buttons();
    };
    apply(p.state);
    let rejoined = false;
    p.addEventListener("state", (e) => {
      apply(e.detail.data);
      // The rejoin's state is the host's latest: a buzz it lacks is resent.
      if (rejoined && buzzed !== null) buzz();
      rejoined = false;
    });
    // After every rejoin, hello again (the host may have missed it); a
    // hello that is not sent goes out on the next one.
    const hello = () => p.send({ t: "hello", name });
    p.addEventListener("joined", () => {
      rejoined = true;
      hello();
    });
    onStatus(p, (s) => {
      if (s !== "closed") showStatus(status, s);
      buttons();
    });
    p.addEventListener("closed", (e) => {
      if (e.detail.code === 4001) showStatus(status, "closed");
      else showError(status, "disconnected");
      $("buzz").disabled = true;
      $("result").textContent = endReason(e.detail);
      $("player-new").classList.remove("hidden");
    });
    $("player-new").onclick = newGame;
    $("buzz").onclick = () => {
      if (!current) return;
      buzzed = current.round;
      buttons();
      $("result").textContent = "Buzzed: waiting for the host…";
      buzz();
    };
    hello();
  };
  const saved = PartySocket.saved(relay);
  if (saved && saved.room && localStorage.getItem("quiz-name")) {
    try {
      // null: the saved room is gone (and forgotten); join another.
      const p = await PartySocket.resume(relay);
      if (p) return play(p, localStorage.getItem("quiz-name"));
      status.textContent = "Your last game has ended: join another.";
    } catch (err) {
      showError(status, "Could not rejoin your game (" + err.message + "): join again.");
    }
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
