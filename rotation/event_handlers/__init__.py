"""Lambda handlers for EventBridge events that close the loop after issuance and rotation."""
