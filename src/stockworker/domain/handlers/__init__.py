"""One handler per command type: (state view, command, policy) -> Outcome | Rejection."""
