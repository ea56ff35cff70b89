"""The order flow: what happens to orders and to the catalog between Sinqro and the box."""
