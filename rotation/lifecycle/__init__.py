"""The rotation lifecycle: one Secrets Manager step, its contract guard and the four steps."""
