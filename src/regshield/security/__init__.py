"""Security primitives: passwords, second factors, tokens, permissions, field encryption."""
