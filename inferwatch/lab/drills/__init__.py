"""Fire drills (`inferwatch drill`): real faults on the local stack, proven end to end to a receiver."""
