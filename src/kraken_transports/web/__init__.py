"""The live order-book page (``kraken-ws web``): an aiohttp server and a static page.

:mod:`~kraken_transports.web.view` builds each frame the page shows from one book and its
trackers, with :mod:`kraken_proto.analytics` only; :mod:`~kraken_transports.web.server`
follows a client's events (:class:`~kraken_transports.web.server.WebHub`) and pushes frames
to each browser over a WebSocket at a bounded rate
(:func:`~kraken_transports.web.server.web_app`); :mod:`~kraken_transports.web.command` is
the command. The page itself (``static/``: HTML, CSS and a small script) needs no build
step and no network beyond the server it came from. See ``docs/web.md``.

Nothing is imported here, so that the command line can name the command cheaply.
"""
