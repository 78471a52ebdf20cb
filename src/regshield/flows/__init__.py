"""Every change to the store is a flow: one class per verb, run by flows/runner.py."""
