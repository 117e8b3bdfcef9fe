"""The chat widget: a script any site can load, publishable keys and the visitors they serve."""
