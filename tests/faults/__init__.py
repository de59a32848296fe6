"""Fault tests: real failures of the SMTP server, the sweep process, the ERP, the ledger and
the input, each checked for messages lost, doubled or silently resent."""
