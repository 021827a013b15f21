"""Per-user rules: Sieve scripts (RFC 5228) and the simple rules that generate them."""
