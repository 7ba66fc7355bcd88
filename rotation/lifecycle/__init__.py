"""The rotation lifecycle: one Secrets Manager step, its contract guard, the renewal decision and the four steps."""
