"""Settings and their defaults, the endpoint (URL and token), secrets."""
