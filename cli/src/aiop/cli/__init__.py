"""The ``aiop`` command line."""
