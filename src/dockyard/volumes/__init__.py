"""Volume drivers: where a named volume's data lives on a host."""
