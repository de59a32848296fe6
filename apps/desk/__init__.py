"""The collections desk: server-rendered web pages for the people who act on what the
automation escalates (tasks, customers, portfolio), reading and writing the ledger.

Start it with `dunning desk serve`; build the ASGI app yourself with
`apps.desk.app.create_app(DeskConfig(ledger_url=...))`.
"""
