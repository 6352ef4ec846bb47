"""Ports to outside systems, each with an embedded default and a production adapter."""
