"""Pure stock domain: commands, positions, rules and events. No I/O, no clock."""
