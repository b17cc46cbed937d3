// kraken-ws web: lays out the frames the server pushes. Every figure arrives computed (by
// kraken_proto.analytics) and as text; numbers are parsed here only to size bars and to
// place the depth chart's points.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const body = document.body;
  const page = { frame: null, frames: 0, error: null, socket: null };
  window.kwPage = page; // read by the browser test

  const query = new URLSearchParams(location.search);
  let symbol = query.get("symbol") || "";
  let tick = query.get("tick") || "";
  let retry = null;
  let silence = null; // fires when the server has sent nothing for too long

  function text(id, value) {
    const node = $(id);
    const shown = value === null || value === undefined || value === "" ? "–" : String(value);
    if (node.textContent !== shown) node.textContent = shown;
  }

  function el(tag, className, content) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (content !== undefined && content !== null) node.textContent = content;
    return node;
  }

  function badge(id, label, tone) {
    const node = $(id);
    node.textContent = label;
    node.className = "badge" + (tone ? " " + tone : "");
  }

  function setStatus(connection, bookState, live) {
    body.dataset.connection = connection;
    body.dataset.bookState = bookState;
    body.dataset.live = live ? "true" : "false";
  }

  // -- the socket ---------------------------------------------------------------------------

  function socketUrl() {
    const params = new URLSearchParams();
    if (symbol) params.set("symbol", symbol);
    if (tick) params.set("tick", tick);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + location.host + "/ws?" + params.toString();
  }

  function open() {
    clearTimeout(retry);
    if (page.socket) {
      page.socket.onclose = null;
      page.socket.close();
    }
    const socket = new WebSocket(socketUrl());
    page.socket = socket;
    socket.onmessage = (message) => {
      const frame = JSON.parse(message.data);
      if (frame.type === "error") showError(frame);
      else render(frame);
    };
    socket.onclose = () => {
      if (page.socket !== socket || page.error) return;
      clearTimeout(silence);
      setStatus("offline", body.dataset.bookState, false);
      badge("conn", "server offline", "bad");
      notice("Lost the connection to kraken-ws web; retrying every 2 s. Figures shown are not live.");
      $("veil-text").textContent = "server offline";
      retry = setTimeout(open, 2000);
    };
  }

  function navigate() {
    clearTimeout(silence);
    const params = new URLSearchParams();
    if (symbol) params.set("symbol", symbol);
    if (tick) params.set("tick", tick);
    const search = params.toString();
    history.replaceState(null, "", search ? "?" + search : location.pathname);
    page.error = null;
    $("error").hidden = true;
    page.frame = null;
    setStatus("connecting", "absent", false);
    $("veil-text").textContent = "loading " + (symbol || "");
    open();
  }

  $("symbol").addEventListener("change", (event) => {
    symbol = event.target.value;
    tick = "";
    navigate();
  });
  $("tick").addEventListener("change", (event) => {
    tick = event.target.value;
    navigate();
  });

  // -- bad input ----------------------------------------------------------------------------

  function showError(frame) {
    page.error = frame.message;
    clearTimeout(silence);
    setStatus("error", "absent", false);
    badge("conn", "bad request", "bad");
    const box = $("error");
    box.replaceChildren(el("div", null, frame.message));
    const links = el("div", "links");
    links.append(el("span", "muted", "Show: "));
    for (const name of frame.symbols || []) {
      const link = el("a", null, name);
      link.href = "?symbol=" + encodeURIComponent(name);
      links.append(link);
    }
    box.append(links);
    box.hidden = false;
    $("veil-text").textContent = "nothing to show";
    fillSelect($("symbol"), frame.symbols || [], null, symbol);
  }

  function notice(message) {
    const box = $("notice");
    if (message) {
      if (box.textContent !== message) box.textContent = message;
      box.hidden = false;
    } else {
      box.hidden = true;
    }
  }

  // -- rendering ----------------------------------------------------------------------------

  function fillSelect(select, values, noneLabel, current) {
    const wanted = (noneLabel === null ? [] : [""]).concat(values);
    if (current && !wanted.includes(current)) wanted.push(current);
    const existing = Array.from(select.options).map((option) => option.value);
    if (existing.join("\n") !== wanted.join("\n")) {
      select.replaceChildren(
        ...wanted.map((value) => {
          const option = el("option", null, value === "" ? noneLabel : value);
          option.value = value;
          return option;
        })
      );
    }
    select.value = current || "";
  }

  function describeState(frame) {
    const connection = frame.connection;
    if (frame.live) return null;
    if (frame.book_state === "resyncing")
      return ["resyncing", "Book resyncing: a checksum failed and a fresh snapshot is on its way. Figures shown are not live."];
    if (frame.book_state === "failed")
      return ["resync failed", "Resyncing the book failed; waiting for a new snapshot. Figures shown are not live."];
    if (connection === "degraded")
      return ["reconnecting", "Connection to the exchange lost; reconnecting" + (frame.connection_reason ? " (" + frame.connection_reason + ")" : "") + ". Figures shown are not live."];
    if (connection === "closed" || connection === "disconnected")
      return ["disconnected", "Disconnected from the exchange" + (frame.connection_reason ? ": " + frame.connection_reason : "") + ". Figures shown are not live."];
    return ["waiting for the book", "Connecting and waiting for a verified snapshot…"];
  }

  // The server sends a frame at least every `refresh` seconds even when nothing changed: when
  // three go missing (a hung server, a stalled link) the figures shown are no longer live.
  function expectNext(frame) {
    clearTimeout(silence);
    const seconds = 3 * Math.max(frame.refresh || 1, 1 / (frame.max_rate || 1));
    silence = setTimeout(() => {
      setStatus("silent", body.dataset.bookState, false);
      badge("conn", "no data", "bad");
      notice("No update from kraken-ws web for " + seconds + " s. Figures shown are not live.");
      $("veil-text").textContent = "no data";
    }, seconds * 1000);
  }

  function render(frame) {
    page.frame = frame;
    page.frames += 1;
    expectNext(frame);
    if (!symbol) symbol = frame.symbol;
    fillSelect($("symbol"), frame.symbols, null, frame.symbol);
    fillSelect($("tick"), frame.tick_choices, "none", frame.tick || "");

    const state = describeState(frame);
    setStatus(frame.connection, frame.book_state, frame.live);
    if (state) {
      badge("conn", state[0], state[0] === "resyncing" || state[0] === "waiting for the book" ? "warn" : "bad");
      notice(state[1]);
      $("veil-text").textContent = state[0];
    } else {
      badge("conn", frame.connection, "ok");
      notice(null);
    }
    const market = frame.market;
    badge("market", "market " + market, market === "active" ? "ok" : market === "stale" ? "warn" : market === "halted" ? "bad" : "");

    text("verified", frame.counters.verified);
    text("resyncs", frame.counters.resyncs);
    text("trade-count", frame.counters.trades);
    text("seq", frame.seq);
    body.dataset.seq = frame.seq;

    renderLatency(frame.latency);
    renderVolume(frame.volume); // trades and flow events stay true when the book is not live
    renderFlow(frame.flow);
    renderTrades(frame.trades);
    if (!frame.live) return; // keep the last book figures, greyed and veiled
    renderHeader(frame.header);
    renderLadder(frame);
    renderChart(frame.chart, frame.header);
  }

  function renderHeader(header) {
    text("best-bid", header.best_bid.text);
    text("best-bid-qty", header.best_bid_qty.text);
    text("best-ask", header.best_ask.text);
    text("best-ask-qty", header.best_ask_qty.text);
    text("mid", header.mid.text);
    text("spread", header.spread.text);
    text("spread-bps", header.spread_bps.text);
    text("microprice", header.microprice.text);
    text("imbalance", header.imbalance.text);
    text("imbalance-levels", "top " + header.imbalance_levels);
    const signal = $("signal");
    signal.textContent = header.signal.replace("_", " ");
    signal.className = "sub signal " + header.signal;
  }

  function renderLatency(latency) {
    if (!latency) {
      text("lat-p50", null);
      text("lat-p99", null);
      return;
    }
    text("lat-p50", latency.delivery_p50_text);
    text("lat-p99", latency.delivery_p99_text);
    text(
      "lat-exchange",
      latency.exchange_p50 === null
        ? "recv → deliver"
        : "exch→recv " + latency.exchange_p50_text + " / " + latency.exchange_p99_text
    );
  }

  function ladderRow(row, best) {
    const tr = el("tr", best ? "best" : "");
    if (row.large) tr.classList.add("large");
    tr.dataset.price = row.price;
    tr.style.backgroundSize = Math.min(100, parseFloat(row.percent)) + "% 100%";
    tr.append(el("td", "price", row.price));
    const size = el("td", "qty", row.qty);
    if (row.levels > 1) size.title = row.levels + " levels";
    tr.append(size);
    tr.append(el("td", "cum", row.cumulative));
    tr.append(el("td", "pct", row.percent_text));
    const traded = el("td", "traded");
    if (row.traded) {
      traded.append(el("span", null, row.traded.volume));
      const split = el("span", "split");
      const buy = el("i");
      buy.style.width = (100 * parseFloat(row.traded.buy)) / parseFloat(row.traded.volume) + "%";
      split.append(buy);
      traded.append(split);
      traded.title = row.traded.count + " trades: bought " + row.traded.buy + ", sold " + row.traded.sell;
    }
    tr.append(traded);
    return tr;
  }

  function renderLadder(frame) {
    const asks = frame.asks.slice().reverse();
    $("asks").replaceChildren(...asks.map((row, i) => ladderRow(row, i === asks.length - 1)));
    $("bids").replaceChildren(...frame.bids.map((row, i) => ladderRow(row, i === 0)));
    const header = frame.header;
    const cell = $("spread-cell");
    cell.replaceChildren(
      document.createTextNode("spread "),
      el("b", null, header.spread.text || "–"),
      document.createTextNode(" (" + (header.spread_bps.text || "–") + " bps)   mid "),
      el("b", null, header.mid.text || "–")
    );
    text("ladder-note", frame.tick ? "tick " + frame.tick : "every level");
  }

  function renderChart(chart, header) {
    const svg = $("depth-chart");
    const width = 600;
    const height = 220;
    const bids = chart.bids.map((p) => [parseFloat(p[0]), parseFloat(p[1])]);
    const asks = chart.asks.map((p) => [parseFloat(p[0]), parseFloat(p[1])]);
    if (!bids.length && !asks.length) {
      svg.replaceChildren();
      return;
    }
    const prices = bids.concat(asks).map((p) => p[0]);
    const low = Math.min(...prices);
    const high = Math.max(...prices);
    const top = Math.max(...bids.concat(asks).map((p) => p[1])) || 1;
    const x = (price) => (high === low ? width / 2 : ((price - low) / (high - low)) * width);
    const y = (qty) => height - (qty / top) * (height - 6);
    function area(points, className) {
      if (!points.length) return null;
      let d = "M" + x(points[0][0]) + "," + height;
      let previous = 0;
      for (const [price, cumulative] of points) {
        d += " L" + x(price) + "," + y(previous) + " L" + x(price) + "," + y(cumulative);
        previous = cumulative;
      }
      const last = points[points.length - 1];
      d += " L" + x(last[0]) + "," + height + " Z";
      const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
      path.setAttribute("d", d);
      path.setAttribute("class", className);
      return path;
    }
    const shapes = [area(bids, "bidarea"), area(asks, "askarea")].filter(Boolean);
    if (header.mid.value !== null) {
      const line = document.createElementNS("http://www.w3.org/2000/svg", "line");
      const at = x(parseFloat(header.mid.value));
      line.setAttribute("x1", at);
      line.setAttribute("x2", at);
      line.setAttribute("y1", 0);
      line.setAttribute("y2", height);
      line.setAttribute("class", "midline");
      shapes.push(line);
    }
    svg.replaceChildren(...shapes);
    const lowText = chart.bids.length ? chart.bids[chart.bids.length - 1][0] : chart.asks[0][0];
    const highText = chart.asks.length ? chart.asks[chart.asks.length - 1][0] : chart.bids[0][0];
    text("chart-low", lowText);
    text("chart-mid", header.mid.text);
    text("chart-high", highText);
  }

  function renderVolume(volume) {
    text("volume-window", "last " + volume.window + " s");
    const summary = $("volume-summary");
    if (!volume.trade_count) {
      summary.textContent = "no trades in the window";
      $("volume").replaceChildren();
      return;
    }
    summary.replaceChildren(
      el("b", null, String(volume.trade_count)),
      document.createTextNode(" trades · bought "),
      el("b", "bid", volume.buy),
      document.createTextNode(" · sold "),
      el("b", "ask", volume.sell),
      document.createTextNode(" · VWAP "),
      el("b", null, volume.vwap_text)
    );
    const largest = Math.max(...volume.levels.map((level) => parseFloat(level.volume))) || 1;
    $("volume").replaceChildren(
      ...volume.levels.map((level) => {
        const li = el("li", level.control ? "control" : "");
        li.append(el("span", "vp", level.price));
        const bar = el("span", "vbar grow");
        const buy = el("i", "b");
        const sell = el("i", "s");
        buy.style.width = (100 * parseFloat(level.buy)) / largest + "%";
        sell.style.width = (100 * parseFloat(level.sell)) / largest + "%";
        bar.append(buy, sell);
        li.append(bar, el("span", "end", level.volume));
        li.title = level.count + " trades: bought " + level.buy + ", sold " + level.sell;
        return li;
      })
    );
  }

  function renderFlow(flow) {
    const list = $("flow");
    if (!flow.length) {
      list.replaceChildren(el("li", "empty", "none yet"));
      return;
    }
    list.replaceChildren(
      ...flow.map((item) => {
        const li = el("li");
        const kind = item.kind.replace("large_order_", "");
        li.append(
          el("span", "muted", item.time || ""),
          el("span", item.side === "bid" ? "bid" : "ask", item.side + " " + kind),
          el("span", "end", item.qty + " @ " + item.price)
        );
        li.title = "was " + item.previous_qty + ", threshold " + item.threshold;
        return li;
      })
    );
  }

  function renderTrades(trades) {
    const list = $("trades");
    if (!trades.length) {
      list.replaceChildren(el("li", "empty", "none yet"));
      return;
    }
    list.replaceChildren(
      ...trades.map((trade) => {
        const li = el("li");
        li.append(
          el("span", "muted", trade.time),
          el("span", trade.side === "buy" ? "bid" : "ask", trade.side),
          el("span", "end", trade.qty + " @ " + trade.price)
        );
        return li;
      })
    );
  }

  setStatus("connecting", "absent", false);
  open();
})();
