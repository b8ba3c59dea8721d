"""Pure stock domain: state, rules and the events a decision yields. No I/O, no clock."""
