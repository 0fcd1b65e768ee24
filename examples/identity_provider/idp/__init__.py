"""The example identity provider's Django project."""
