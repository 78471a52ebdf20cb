"""Notices of sensitive changes by email: composed from outbox payloads that carry no personal
data, addressed at send time from sealed records, delivered by SMTP or written to files.

- `requests.py`: `notice(tx, ...)`, which flows call to queue a notice;
- `messages.py`: the kinds of change and how each reads, composing the message;
- `handler.py`: the outbox handler (`notify:email`) that resolves recipients and sends;
- `delivery.py`: SMTP (TLS verified) or `.eml` files when SMTP is disabled.
"""
