// The chat page: one WebSocket to this server's /ws; every frame it gets is
// a JSON line {type, room, from, text, via}.
(() => {
  const $ = (id) => document.getElementById(id);
  let socket = null;

  function show(line) {
    const li = document.createElement("li");
    if (line.type === "msg") {
      const who = document.createElement("b");
      who.textContent = `${line.from}: `;
      li.append(who, line.text);
    } else {
      li.className = "note";
      li.textContent = `${line.from} ${line.type === "join" ? "joined" : "left"} ${line.room}`;
    }
    const via = document.createElement("span");
    via.className = "via";
    via.textContent = `via ${line.via}`;
    li.append(via);
    $("log").append(li);
    $("log").scrollTop = $("log").scrollHeight;
  }

  function connected(on) {
    $("text").disabled = $("send").disabled = !on;
    if (on) {
      $("text").focus();
    }
  }

  $("join").addEventListener("submit", (event) => {
    event.preventDefault();
    socket?.close();
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const params = new URLSearchParams({ name: $("name").value, room: $("room").value });
    const ws = new WebSocket(`${scheme}://${location.host}/ws?${params}`);
    socket = ws;
    $("state").textContent = "connecting...";
    ws.onopen = () => {
      $("state").textContent = `in room ${$("room").value} on ${location.host}`;
      connected(true);
    };
    ws.onmessage = (event) => show(JSON.parse(event.data));
    ws.onclose = () => {
      if (socket === ws) {
        $("state").textContent = "disconnected";
        connected(false);
      }
    };
  });

  $("say").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("text").value.trim();
    if (text && socket?.readyState === WebSocket.OPEN) {
      socket.send(text);
      $("text").value = "";
    }
  });
})();
