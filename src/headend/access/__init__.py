"""Who is calling: keys and their scopes, the authenticator, console logins, widget visitors."""
