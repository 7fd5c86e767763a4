"""The HTTP routes: thin, from request to domain to the bus and back."""
