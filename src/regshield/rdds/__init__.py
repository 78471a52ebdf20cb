"""Registration data directory services: RDAP and WHOIS, over one record and one redaction
engine (rdds/record.py, rules/redaction.py)."""
