"""regshield: a security-first platform for domain registrars."""

__version__ = "0.1.0"
