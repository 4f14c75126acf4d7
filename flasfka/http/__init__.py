"""The HTTP layer: the route table, its handlers, rendering, hardening, the Site."""
