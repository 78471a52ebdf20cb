"""The registry link: EPP wire format and XML, client and session pool; sandbox/ is the built-in
registry."""
