"""Alerts: from the database's state to events, from events to deliveries, and sending.

- rules.py: host transitions (failing / overdue / recovered) and lost processes, as
  Events with one key per occurrence (run by the scheduler each pass).
- outbox.py: events -> Delivery rows per channel, reminders, digests and ping URLs.
- notify.py: sends due deliveries with backoff; never raises into its caller.
- transports.py: email, webhook (signed JSON) and ping requests.
- messages.py: what a notification says.
- tokens.py: read-only API tokens.

docs/alerts.md is the operator's view of all of it.
"""
