"""The edges of prefect-dunning: the programs people and other systems talk to.

`apps.cli` (the `dunning` command), `apps.desk` (the collections desk), `apps.webhooks` (the
webhook receiver), `apps.mailsink` and `apps.sample` (demo tooling). They may import every
layer; nothing in `flows/`, `tasks/`, `blocks/` or the core `dunning/` imports them.
"""
