"""``edged relay``: Sinqro webhooks in, MQTT notifications out, for a fleet of boxes."""
