"""Programs the tests run as separate processes, and the helper that runs them."""
