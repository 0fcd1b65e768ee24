"""Users, what their roles grant in each service, and the API that says so."""
