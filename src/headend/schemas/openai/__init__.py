"""Wire shapes of the OpenAI API, as headend accepts and returns them."""
