"""Tests against a real model server (llama.cpp): `make test-model` runs them."""
