"""Small utilities: parameter/FLOP counting, seeding."""
