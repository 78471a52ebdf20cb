"""Pure rules: no I/O, no clock, no store. Each takes values and answers or raises."""
