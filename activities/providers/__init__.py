"""One module per wire format: build the request, parse the reply, classify the errors."""
