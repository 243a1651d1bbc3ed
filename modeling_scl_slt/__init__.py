"""The SCL-SLT model: configuration, model, similarity functions (the code that travels to the Hub)."""
