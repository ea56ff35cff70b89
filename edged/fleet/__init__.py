"""Fleets: the box's identity, its telemetry and alerts over MQTT, and webhook notifiers."""
